/*
 * handoff.pml -- Promela model of the block-handoff protocol of
 * papers/handoff.md (steps A1-A7, R1-R3, S1-S4, and "Who may free") and of
 * DESIGN.md invariant 3.
 *
 * Checked by papers/check_model.sh (spin 6.5.2); the abstractions, results
 * and counterexamples are described in papers/model.md.  Every protocol step
 * is at a label named after it -- give_up (with R1_remember), R2_R3, A1_A2,
 * A3_A5, A7_fresh, reclaim_by_mutator; S1_S2_walk (with S1_S2_access),
 * S3_advance, S4_free -- under a comment quoting the step from handoff.md, so
 * a `spin -t -p` trail reads like the paper.
 *
 * Actors: NT = 2 allocator processes, one sweeper process.  The sweeper
 * sweeps (S1), retires (S2), advances (S3) and frees (S4); as handoff.md
 * allows, an allocator may also retire and reclaim (S2-S4, as
 * Allocator::release_empty_blocks does), and so every registry walk pins,
 * the sweeper's included.
 * Shared state: NB = 2 blocks (state word, size class, one cell), the
 * registries of two directories (size classes 0 and 1), the global epoch E,
 * the per-thread epoch records L[t] (and the sweeper's), the limbo list, the
 * pool.
 *
 * Atomicity.  A step (one Promela transition) is, as far as possible, one
 * access to shared memory by the real code -- a load, a store or a CAS --
 * plus thread-private work and ghost bookkeeping.  Where the model puts more
 * than one access into a step, the comment there says why that loses no
 * behaviour, or only lets S3 advance more often (an over-approximation, sound
 * for every property checked here):
 *   A1+A2, and A3..A5 with the unpin of A6/A7 (likewise the sweeper's walks):
 *     the model pins exactly while a pointer read from the registry is held;
 *     the code pins longer;
 *   R2+R3, A3+A5: a load of the state word and the CAS that compares with it;
 *   S1: CAS, sweep and store of a block the sweeper holds exclusively;
 *   S2: CAS, unlink, tag and push;  S3: scan of the records and the CAS;
 *   A7: format and publish of a fresh block.
 * Memory is sequentially consistent: the code uses seq_cst for the
 * store-buffering pattern (pin store / slot loads against unlink / record
 * loads) and acquire/release to hand a block's contents over.
 *
 * Build flags:
 *   -DLIVENESS    the sweeper runs a fixed round -- a walk or not, then S3 and
 *                 S4 -- (it "keeps trying to advance and free"), for pan -a -f;
 *                 without it the sweeper takes any step at any time
 *   -DLAZY_SWEEP  also model begin_lazy_sweep (FULL|SWEPT -> UNSWEPT; A4's
 *                 UNSWEPT claims with the claimer's sweep); doubles the states
 * Mutants (each knocks out one part of the protocol; each must fail):
 *   -DMUTANT_NO_GENERATION     (a) R3 compares the state only, not the generation
 *   -DMUTANT_ADVANCE_UNCHECKED (b) S3 looks at thread 0's record only
 *   -DMUTANT_EARLY_FREE        (c) S4 frees once E >= tag + 1
 *   -DMUTANT_NO_PIN            (d) A1/A7 do not pin: the claim scan is unprotected
 *   -DMUTANT_SWEEPER_NO_PIN    (e) the sweeper's registry walks do not pin
 *
 * Reachability probes: statements marked PROBE:<name> must be reached in the
 * safety run (check_model.sh reads pan's "unreached" list), so the situations
 * they mark really occur and the LTL property is not vacuous.
 */

/* ------------------------------------------------------------------ sizes */
#define NT      2             /* allocator threads                              */
#define NB      2             /* blocks (all the memory the pool ever has)      */
#define NIL     255           /* null block pointer                             */
#define SWEEPER NT            /* the sweeper's id (owner field, epoch record)   */

/* Epochs are kept relative to E.  The protocol only compares epochs: S3
 * checks a pinned record's epoch for equality with E, S4 checks E >= tag + 2.
 * So the model stores no epoch numbers: a record L[t] is UNPINNED, PINNED_E
 * (pinned at the current E) or PINNED_OLD (pinned at an older epoch: S3 gives
 * up), an advance turns every PINNED_E into PINNED_OLD, and a limbo entry
 * keeps E - tag (advances since its retire) saturated at 2.  This is exact.
 * (In the model a pin always carries the current E -- A1 shares A2's step --
 * so a pinned record's epoch is E or E-1.  In the code it can be older: see
 * A1 and model.md.) */
mtype = { UNPINNED, PINNED_E, PINNED_OLD };

/* Generations are kept relationally.  The protocol only ever compares a
 * generation with another generation of the same block: R3 compares the
 * loaded word's with the remembered g, and a CAS compares the loaded word w
 * (generation included) with the header.  Every generation a thread holds was
 * copied from the header; the header's generation changes only when the pool
 * purges the block (all-zero: generation 0, which the pool never hands out)
 * or re-formats it (g+1 on a 32-bit counter: a value the block has not had in
 * the last 2^32 recycles, so none that any thread still holds).  So all the
 * model needs for each generation a thread holds across steps -- only R1's g;
 * w lives within one step here -- is one bit, "equal to the block's current
 * generation": set when copied, cleared when the block's generation changes
 * (new_generation).  This is exact and allows unbounded recycling. */

#ifdef MUTANT_EARLY_FREE
#define GRACE   1             /* mutant (c): free one epoch early               */
#else
#define GRACE   2             /* S4: E >= tag + 2                               */
#endif

/* block states (marked_block.h BlockState) and the ghost status of a cell */
mtype = { POOLED, OWNED, FULL, UNSWEPT, SWEEPING, SWEPT, EMPTY, RETIRED };
mtype = { FREE, INUSE, DEAD };

/* ------------------------------------------------------------ block memory */
/* Type-stable: the pool never unmaps a block, so the header of a freed block
 * can still be loaded (R2); it reads as what was last stored in it.          */
mtype st[NB];                 /* state word: state (generation: rem_gen_ok)     */
byte  own[NB];                /* state word: owner (meaningful in OWNED, SWEEPING) */
byte  cls[NB];                /* size class (= directory) the block is formatted for */
bit   lb[NB];                 /* the live-bitmap bit of the block's one cell    */
mtype cell[NB];               /* ghost truth about the cell: FREE; INUSE
                                 (allocated, and its owner or the program still
                                 uses it); DEAD (allocated, unreachable)        */

/* --------------------------------------------------------------- registry */
/* A block published in a directory has one slot there (its registry index),
 * in the directory of its class.  reg[b] == 1: that slot holds b; 0: it holds
 * nullptr (b was unlinked).  Which slot a block has and in what order a scan
 * meets the slots do not matter to the protocol, so the model keeps only this
 * bit (a scan of directory c loads the slot of some block b with cls[b] == c). */
bit   reg[NB];

/* ------------------------------------------------------------ epoch domain */
                              /* global epoch E: implicit, see above            */
mtype L[NT+1];                /* L[t] = (epoch << 1) | pinned, relative to E;
                                 L[SWEEPER]: the sweeper's record (ScopedPin)   */

/* ------------------------------- the limbo list (under its lock); the pool */
bit   limbo[NB];              /* (b, tag) is in the limbo list                  */
byte  adv[NB];                /* E - tag, saturated at 2                        */
bit   freed[NB];              /* b is in the pool (released by S4)              */

/* ----------------------------------------------------- per-allocator state */
byte  acls[NT];               /* the size class this allocator allocates        */
byte  cur[NT];                /* its OWNED block, or NIL                        */
byte  last[NT];               /* R1: remembered block b (NIL: none) ...         */
bit   rem_gen_ok[NT];         /* ... and g: 1 iff g == b's current generation   */
byte  ptr[NT+1];              /* block pointer read from a slot, held until the
                                 last access (A2..A5; ptr[SWEEPER]: S1, S2)     */

/* ------------------------------------------------------------------ ghosts */
byte  owners[NB];             /* threads holding b exclusively (OWNED, SWEEPING) */
bit   ptr_freed[NT+1];        /* ptr[t] was freed after t loaded it             */


/* ---------------------------------------------------------------- helpers */

/* (2) no block held by two threads at once */
inline take_exclusive(b) {
  owners[b]++;
  assert(owners[b] == 1)
}

/* Sweep the block's cell; the caller holds b exclusively (SWEEPING, or OWNED
 * after a lazy claim).  A cell is freed unless its live bit is set and it is
 * marked (reachable).  (3) no live cell swept: a cell in use must survive. */
inline sweep_cell(b) {
  assert(cell[b] != INUSE || lb[b] == 1);
  if
  :: lb[b] == 1 && cell[b] == DEAD -> lb[b] = 0; cell[b] = FREE
  :: else -> skip
  fi
}

/* b's generation changes (the pool purges or re-formats b): a remembered
 * (b, g) no longer matches. */
inline new_generation(b, k) {
  for (k : 0 .. NT-1) {
    if
    :: last[k] == b -> rem_gen_ok[k] = 0
    :: else -> skip
    fi
  }
  k = 0
}

/* A successful claim (A5, R3 or a fresh block; b is now OWNED by t).  The
 * thread then allocates the cell if it is free -- or gives the block up
 * before allocating anything.  Owner-private, so part of the claim's step. */
inline after_claim(b) {
  take_exclusive(b);                          /* (2) */
  assert(cls[b] == acls[t]);                  /* (4) the block has my class */
  cur[t] = b;
  if
  :: cell[b] == FREE -> cell[b] = INUSE       /* fast path: allocate */
  :: true -> skip
  fi
}

/* A7: unpin: L[t].store(0, release) -- with or without a block.  It shares
 * the step of the scan's last access to b (A2's null slot, A3/A5): after
 * that access t no longer dereferences b, and unpinning at that instant
 * instead of a step later only lets S3 advance in more states, which adds
 * behaviours and removes none (a scan that would have seen t pinned at E does
 * not stop anyway; one that would have stopped changes nothing). */
inline unpin() {
#ifndef MUTANT_NO_PIN
  L[t] = UNPINNED;
#endif
  ptr[t] = NIL; ptr_freed[t] = 0; b = 0; ws = 0
}

/* ===================================================== retire and reclaim */

/* S2 on block b, by a thread inside a pinned registry walk that loaded b from
 * its slot (the sweeper's S2, or Allocator::release_empty_blocks, which any
 * thread may call):
 *   CAS EMPTY -> RETIRED;
 *   slot[i].store(nullptr, seq_cst)        -- unlink
 *   tag := E.load(seq_cst); limbo.push(b, tag)
 * One step.  Between the CAS and the unlink another thread can only load the
 * slot (and get b) or load b's state (and find RETIRED, which no claim
 * accepts); each such slot load commutes with the CAS and each state load
 * with the unlink, so the same outcomes arise with the slot loads before this
 * step and the state loads after it (a thread that did both in that order, a
 * rejected R3 and then a new scan, rejects just as well when R3 runs before
 * the step).  The tag is read at the unlink: if another thread advances E in
 * between, the code's tag is newer, so the model frees no later than the code.
 * (The limbo cap is >= NB, so S2 is never skipped for it.) */
inline retire(b) {
  st[b] = RETIRED;                         /* the CAS */
  reg[b] = 0;                              /* unlink */
  limbo[b] = 1; adv[b] = 0;                /* tag := E; push: E - tag = 0 */
  if
  :: b == 0 -> printf("PROBE:retire_b0\n")
  :: else -> skip
  fi
}

/* S3 (EpochDomain::try_advance, called by Limbo::reclaim on any thread that
 * reclaims, under the limbo lock):
 *     e := E.load(seq_cst);
 *     for each registered thread u: l := L[u].load(seq_cst);
 *         if pinned(l) and epoch(l) != e: give up this attempt
 *     E.compare_exchange(e, e+1, seq_cst)
 * One step: the records are read at the instant of the CAS.  A thread that
 * pins while the scan runs pins at e and never makes it give up; a record read
 * earlier that was pinned at an old epoch may have been unpinned since.  So
 * every advance of the real scan is also an advance here (more behaviours,
 * not fewer; see model.md).  The CAS fails only if E moved since the load,
 * i.e. another reclaimer advanced: the same as giving up. */
inline do_S3(u, stop) {
  stop = 0;
  for (u : 0 .. NT) {
#ifdef MUTANT_ADVANCE_UNCHECKED
    if                                          /* (b): record 0 only */
    :: u == 0 && L[u] == PINNED_OLD -> stop = 1
    :: else -> skip
    fi
#else
    if
    :: L[u] == PINNED_OLD -> stop = 1
    :: else -> skip
    fi
#endif
  }
  u = 0;
  if
  :: !stop ->
       /* E := e + 1: records pinned at e are now pinned at an old epoch,
          and every limbo entry is one advance older */
       for (u : 0 .. NT) {
         if
         :: L[u] == PINNED_E -> L[u] = PINNED_OLD
         :: else -> skip
         fi
       }
       u = 0;
       for (u : 0 .. NB-1) {
         if
         :: limbo[u] && adv[u] < 2 -> adv[u]++
         :: else -> skip
         fi
       }
       u = 0
  :: else ->
       stop = 0; printf("PROBE:advance_blocked\n")
  fi
}

/* S4 for one limbo entry b with E >= tag + 2 (adv >= GRACE): pool.release(b).
 * The pool keeps the header (RETIRED, g) or purges the block: all-zero bytes
 * read as (POOLED, generation 0).  Either way no claim accepts it. */
inline release(b, u) {
  assert(st[b] == RETIRED && owners[b] == 0);
  assert(cell[b] != INUSE);                        /* (3) */
  limbo[b] = 0; adv[b] = 0; freed[b] = 1;
  /* ghosts: pointers to b that threads still hold now dangle */
  for (u : 0 .. NT) {
    if
    :: ptr[u] == b -> ptr_freed[u] = 1
    :: else -> skip
    fi
  }
  u = 0;
  if
  :: skip
  :: st[b] = POOLED; new_generation(b, u)           /* purged: generation 0 */
  fi
}

/* Limbo::reclaim by a thread other than the sweeper (release_empty_blocks):
 * S3, then S4 for every entry whose grace period is over.  Under the limbo
 * lock in the code; one step here (freeing at the instant of the check is
 * never later than the code frees). */
inline reclaim(b, u, stop) {
  do_S3(u, stop);
  for (b : 0 .. NB-1) {
    if
    :: limbo[b] && adv[b] >= GRACE ->
         release(b, u);
         printf("PROBE:mutator_frees\n")
    :: else -> skip
    fi
  }
  b = 0
}

/* ============================================================== allocator */
proctype Allocator(byte t)
{
  byte b;          /* block pointer (local variable of the refill)           */
  mtype ws;        /* state field of the loaded word w                       */
  byte k;          /* loop index                                             */
  bit stop;        /* S3 gives up (reclaim)                                  */

  do
  /* ---------------------------------------------- give up the OWNED block */
  :: cur[t] != NIL ->
give_up:
       /* OWNED(t) -> FULL | SWEPT by a release store.  Before it the owner
          records its allocations in the live bitmap; the program may have
          dropped the object by the next mark (the cell is then DEAD). */
       atomic {
         b = cur[t];
         assert(st[b] == OWNED && own[b] == t && !freed[b]);
         if
         :: cell[b] == INUSE ->
              lb[b] = 1;
              if
              :: skip                           /* still reachable */
              :: cell[b] = DEAD                 /* garbage at the next mark */
              fi;
              st[b] = FULL
         :: else ->
              st[b] = SWEPT
         fi;
         own[b] = 0; owners[b]--; cur[t] = NIL;
R1_remember:
         /* R1: remember (b, g) when t gives b up */
         last[t] = b; rem_gen_ok[t] = 1;
         b = 0 }

  /* ------------------------------------ refill: re-claim last block, no pin */
  :: cur[t] == NIL && last[t] != NIL ->
R2_R3:
       /* R2: w := b->state.load(acquire).  No pin: b may have been freed and
              recycled since R1; the pool never unmaps it, so the load is safe.
          R3: if w.generation == g and w.state in {SWEPT, EMPTY}:
                  CAS(b->state, w, w.with(OWNED, t))
          One step: the CAS succeeds exactly when the word still equals w,
          i.e. as if nothing happened between R2 and R3; and a CAS that fails
          because something did changes nothing: the same as a rejection. */
       atomic {
         b = last[t];
         ws = st[b];                                   /* R2 */
         if
#ifdef MUTANT_NO_GENERATION
         :: ws == SWEPT || ws == EMPTY ->              /* (a): state only */
#else
         :: rem_gen_ok[t] && (ws == SWEPT || ws == EMPTY) ->
#endif
              st[b] = OWNED; own[b] = t;               /* R3: the CAS succeeds */
              /* (1) never claim a block recycled since it was remembered:
                 rem_gen_ok[t] is exactly "b's generation is still g" */
              assert(rem_gen_ok[t] && !freed[b]);
              after_claim(b);
              printf("PROBE:r3_claims\n")
         :: !rem_gen_ok[t] ->
              printf("PROBE:r3_generation_rejects\n")
         :: true -> skip                               /* rejected, or the CAS fails */
         fi;
         last[t] = NIL; rem_gen_ok[t] = 0;
         b = 0; ws = 0 }

  /* ------------------------------------------- refill: pinned claim scan */
  :: cur[t] == NIL ->
A1_A2:
       /* A1: pin: e := E.load(seq_cst); L[t].store(e<<1 | 1, seq_cst)
          A2: for each slot i: b := slot[i].load(seq_cst)
          The model pins exactly while t holds a block pointer read from a
          registry: from the slot load (A1 and A2 are one step) to the last
          access to b (the unpin shares the A3..A5 step).  The code pins
          longer on both sides: it pins before the load -- and E may even
          advance between A1's load and store, leaving t pinned at an older
          epoch -- and unpins after the last access.  A pin that covers
          more, or carries an older epoch, only makes S3 give up more often;
          so the model lets S3 advance in every situation the code does, and
          more (see model.md).
          The model looks at one slot of its directory per scan, chosen
          nondeterministically: earlier slots of a longer scan only add loads
          and failing CASes, which no other process can observe.  A null
          slot ends the scan (A7: unpin): nothing happens. */
       atomic {
         select (b : 0 .. NB-1);
         if
         :: reg[b] && cls[b] == acls[t] ->
#ifndef MUTANT_NO_PIN
              L[t] = PINNED_E;                           /* A1 */
#endif
              ptr[t] = b; ptr_freed[t] = 0               /* A2 */
         :: else -> b = 0                                /* null slot */
         fi }
       if
       :: ptr[t] != NIL ->
A3_A5:
            /* A3: w := b->state.load(acquire) -- pinned, so b is not freed
               A4: if w.state in {SWEPT, EMPTY, UNSWEPT}:
               A5:     CAS(b->state, w, w.with(OWNED, t)); generation included
               A6: on success: unpin; b is OWNED by t (kept past the pin)
               A7: unpin (also when nothing was claimed)
               One step for A3..A5, like R2+R3: the CAS succeeds exactly when
               the word did not change since A3; a failed CAS changes nothing.
               A3 and A5 both dereference b, so (1) is checked here. */
            atomic {
              b = ptr[t];
              assert(!ptr_freed[t] && !freed[b]);         /* (1) */
              ws = st[b];                                 /* A3 */
              if
              :: ws == SWEPT || ws == EMPTY || ws == UNSWEPT ->  /* A4 */
                   st[b] = OWNED; own[b] = t;             /* A5: the CAS succeeds */
                   /* an UNSWEPT block: the claimer sweeps it (lazy sweep;
                      it is OWNED, nobody else touches it) */
                   if
                   :: ws == UNSWEPT -> sweep_cell(b)
                   :: else -> skip
                   fi;
                   after_claim(b)                         /* A6 */
              :: ws == EMPTY ->
                   /* or, in Allocator::release_empty_blocks (any thread, a
                      pinned walk of the registry): S2, retire b */
                   retire(b);
                   printf("PROBE:mutator_retires\n")
              :: true -> skip                             /* not claimable, or lost */
              fi;
              unpin() }                                   /* A6/A7 */
       :: else -> skip
       fi

  /* ------------- Allocator::release_empty_blocks: S3 and S4 (Limbo::reclaim) */
  :: true ->
reclaim_by_mutator:
       atomic { reclaim(b, k, stop) }

  /* ------------------------------------------ refill: a fresh block (A7) */
  :: cur[t] == NIL ->
A7_fresh:
       /* A7: nothing claimed: take a fresh block from the pool (no pin).
          The pool re-formats it -- new generation, our class, OWNED by us --
          before it is published in a slot of our directory.  (Format and
          publish are one step: until the publish only a stale R2 can see
          the block, and it reads OWNED either way.)  The model lets a thread
          take a fresh block at any refill, not only after a fruitless scan. */
       atomic {
         select (b : 0 .. NB-1);
         if
         :: freed[b] ->
              freed[b] = 0;
              new_generation(b, k);                     /* g+1 */
              if
              :: cls[b] != acls[t] ->
                   printf("PROBE:cross_class_recycle\n")
              :: else -> skip
              fi;
              cls[b] = acls[t];
              st[b] = OWNED; own[b] = t;
              cell[b] = FREE; lb[b] = 0;
              after_claim(b);
              reg[b] = 1                             /* publish */
         :: else -> skip                             /* the pool is empty */
         fi;
         b = 0 }
  od
}

/* ================================================================ sweeper */

/* The sweeper's registry walks (S1 in sweep_unswept_blocks, S2 in
 * retire_empty_blocks) run pinned: a ScopedPin registers and pins the sweeper
 * (L[SWEEPER]), since any thread may free (Limbo::reclaim).  As for the
 * allocators, the model pins exactly while a pointer read from a slot is held:
 * the slot load (with the pin) is one step, the access to the block (with the
 * unpin) the next.  One walk step stands for both walks: after the load it may
 * do S1 or S2 on the block (or nothing).
 *
 * S1: CAS UNSWEPT|FULL -> SWEEPING(sweeper); sweep cells; store SWEPT | EMPTY
 *     | FULL.  Also SWEPT blocks: the code (Directory::sweep) sweeps them too.
 *     The state load, the CAS, the sweep and the store are one step: a CAS
 *     that would fail is the same as doing nothing; while SWEEPING the block
 *     is held exclusively and no claim accepts it, so a thread that would have
 *     seen SWEEPING sees the state before or after instead, and every claim
 *     that could succeed at either time is explored.
 * S2: retire an EMPTY block beyond the retention budget (inline retire). */
inline do_walk() {
  atomic {
    select (b : 0 .. NB-1);
    if
    :: reg[b] ->
#ifndef MUTANT_SWEEPER_NO_PIN
         L[SWEEPER] = PINNED_E;                         /* ScopedPin */
#endif
         ptr[SWEEPER] = b; ptr_freed[SWEEPER] = 0
    :: else -> b = 0                                    /* null slot */
    fi }
  if
  :: ptr[SWEEPER] != NIL ->
S1_S2_access:
       atomic {
         b = ptr[SWEEPER];
         assert(!ptr_freed[SWEEPER] && !freed[b]);     /* (1) */
         if
         :: st[b] == FULL || st[b] == SWEPT || st[b] == UNSWEPT ->
              /* S1 */
              st[b] = SWEEPING; own[b] = SWEEPER; take_exclusive(b);
              sweep_cell(b);
              st[b] = (lb[b] -> FULL : EMPTY);          /* one cell: EMPTY or FULL */
              own[b] = 0; owners[b]--
         :: st[b] == EMPTY ->
              retire(b)                                 /* S2 */
         :: true -> skip                                /* nothing to do, or lost */
         fi;
         /* unpin */
         L[SWEEPER] = UNPINNED; ptr[SWEEPER] = NIL; ptr_freed[SWEEPER] = 0; b = 0 }
  :: else -> skip
  fi
}

/* Directory::begin_lazy_sweep, by the collector at the end of marking (only
 * with -DLAZY_SWEEP: it doubles the state space): every FULL or SWEPT block
 * becomes UNSWEPT, and whoever claims it (A4 accepts UNSWEPT) sweeps it, or
 * the sweeper does (S1).  It requires that no refill is in flight and runs
 * while the concurrent sweeper is paused (handoff.md, "Why it is correct", 7),
 * so it is one step, taken when no allocator is pinned and the sweeper is
 * between walks (it is placed in the sweeper's loop for that reason). */
inline lazy_begin() {
  atomic {
    L[0] == UNPINNED && L[1] == UNPINNED ->          /* no refill in flight (NT = 2) */
    for (b : 0 .. NB-1) {
      if
      :: reg[b] && (st[b] == FULL || st[b] == SWEPT) -> st[b] = UNSWEPT
      :: else -> skip
      fi
    }
    b = 0 }
}

proctype Sweeper()
{
  byte b;          /* block pointer */
  byte u;          /* thread whose record S3 reads */
  bit stop;        /* S3 gives up this attempt */

#ifndef LIVENESS
  /* Safety: any step, in any order, any number of times. */
  do
  :: true -> S1_S2_walk: do_walk()
#ifdef LAZY_SWEEP
  :: lazy_begin()
#endif
  :: true -> S3_advance: atomic { do_S3(u, stop) }
  :: true ->
S4_free:
     /* S4: for (b, tag) in limbo with E >= tag + 2: pool.release(b) */
     atomic {
       select (b : 0 .. NB-1);
       if
       :: limbo[b] && adv[b] >= GRACE -> release(b, u)
       :: else -> skip
       fi;
       b = 0 }
  od
#else
  /* Liveness: the sweeper keeps trying to advance and free: each round may
     walk the registry (S1 or S2 on one block), then always tries S3 and S4. */
  do
  :: if
     :: true -> S1_S2_walk: do_walk()
#ifdef LAZY_SWEEP
     :: lazy_begin()
#endif
     :: skip
     fi;
S3_advance:
     atomic { do_S3(u, stop) };
S4_free:
     /* S4: for (b, tag) in limbo with E >= tag + 2: pool.release(b) */
     atomic {
       for (b : 0 .. NB-1) {
         if
         :: limbo[b] && adv[b] >= GRACE -> release(b, u)
         :: else -> skip
         fi
       }
       b = 0 }
  od
#endif
}

/* =================================================================== init */
init {
  byte k;
  atomic {
    /* blocks: both EMPTY, in directory 0 */
    for (k : 0 .. NB-1) { st[k] = EMPTY; cell[k] = FREE; reg[k] = 1; cls[k] = 0 }
    /* allocators: thread 0 allocates class 0; thread 1 class 0 (it competes
       with thread 0) or class 1 (it gets blocks only by recycling, which
       moves them between classes) */
    for (k : 0 .. NT-1) { cur[k] = NIL; last[k] = NIL }
    for (k : 0 .. NT) { ptr[k] = NIL; L[k] = UNPINNED }
    acls[0] = 0;
    if
    :: acls[1] = 0
    :: acls[1] = 1
    fi;
    k = 0;
    run Sweeper();
    run Allocator(0);
    run Allocator(1)
  }
}

/* LTL: a retired block is eventually freed, checked with weak fairness
 * (-DLIVENESS; pan -a -f).  The allocators loop forever and pass quiescent
 * points (outside A1..A7); the sweeper keeps trying to advance and free. */
#define retired_b0 (limbo[0] == 1)
#define freed_b0   (freed[0] == 1)
ltl retire_then_free { [] (retired_b0 -> <> freed_b0) }
