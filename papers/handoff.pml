/*
 * handoff.pml -- Promela model of the block-handoff protocol of papers/handoff.md
 * (steps A1-A7, R1-R3, S1-S4) and DESIGN.md invariant 3.
 *
 * Checked by papers/check_model.sh (spin 6.5.2); abstractions and results are
 * in papers/model.md.  Every protocol step is tagged with its name (A1 .. S4)
 * in a comment and, where a step starts, with a label of the same name
 * (A1_pin, R2_load, S3_advance, ...), so spin -t -p trails read like the paper.
 *
 * Actors: NT allocator processes, one sweeper process.
 * Shared state: NB blocks (state word = state, generation, owner; class; one
 * cell), NC directories of NS registry slots each, the global epoch E, the
 * per-thread epoch records L[t], the sweeper's limbo list.
 *
 * Mutants (each one knocks out one part of the protocol; each must fail):
 *   -DMUTANT_NO_GENERATION  R3 compares only the state, not the generation
 *   -DMUTANT_ADVANCE_UNCHECKED  S3 checks only thread 0's record
 *   -DMUTANT_EARLY_FREE     S4 frees when E >= tag + 1
 *   -DMUTANT_NO_PIN         A1/A7 do not pin: the claim scan runs unprotected
 *
 * Reachability probes (used by check_model.sh): statements tagged with a
 * comment "PROBE:<name>" must not be reported unreached by pan, so that the
 * interesting situations (and the premise of the LTL property) really occur.
 */

/* ------------------------------------------------------------------ sizes */
#define NT      2             /* allocator threads                              */
#define NB      2             /* blocks (the pool never makes more)             */
#define NC      2             /* size classes = directories                     */
#define NS      2             /* registry slots per directory (>= NB: a block
                                 recycled into any class always finds a slot)   */
#define NSLOT   (NC * NS)     /* directory c owns slots c*NS .. c*NS+NS-1       */
#define NIL     255           /* null block pointer                             */
#define SWEEPER NT            /* owner id of the sweeper in the state word      */

/* Epochs are kept modulo NEPOCH (see model.md: modular equality in S3 is
 * implied by real equality, so the model allows every advance the protocol
 * allows -- an over-approximation, sound for safety and for LTL properties
 * that quantify over all runs).  S4 does not compare epochs modulo anything:
 * each limbo entry stores E - tag (advances since retire), saturated at 2. */
#ifndef NEPOCH
#define NEPOCH  2
#endif

/* Generations: 0 is what a purged (all-zero) header reads as; the pool hands
 * out 1..NGEN.  Only equality of generations is ever tested (R3, the CAS), so
 * by data independence the model may pick, on recycling, the smallest value
 * that differs from every generation of that block that anyone still holds
 * (the header, a remembered (b,g), a loaded state word).  That is what the
 * pool's "g+1" achieves for 2^32 recycles; NGEN = 2*NT+2 always leaves one. */
#define NGEN    (2 * NT + 2)

#ifdef MUTANT_EARLY_FREE
#define GRACE   1             /* mutant (c): free one epoch early               */
#else
#define GRACE   2             /* S4: E >= tag + 2                               */
#endif

/* block states (marked_block.h BlockState) and the ghost status of a cell */
mtype = { POOLED, OWNED, FULL, UNSWEPT, SWEEPING, SWEPT, EMPTY, RETIRED };
mtype = { FREE, INUSE, DEAD };

/* ------------------------------------------------------------ block memory */
/* The block header survives a free (type-stable memory): the pool never
 * unmaps a block, so R2 may load st/gen of a freed block.                    */
mtype st[NB];                 /* state word: state                             */
byte  gen[NB];                /* state word: generation                        */
byte  own[NB];                /* state word: owner (OWNED / SWEEPING only)      */
byte  cls[NB];                /* size class the block is formatted for          */
bit   lb[NB];                 /* live bitmap bit of the block's one cell        */
mtype cell[NB];               /* ghost: FREE, INUSE (allocated and reachable:
                                 someone still uses it), DEAD (allocated,
                                 unreachable: the next sweep may free it)       */

/* --------------------------------------------------------------- registry */
byte  slot[NSLOT];            /* std::atomic<MarkedBlock*> slots                */

/* ------------------------------------------------------------ epoch domain */
byte  E;                      /* global epoch, modulo NEPOCH                    */
byte  Lep[NT];                /* L[t] = (epoch << 1) | pinned                   */
bit   Lpin[NT];

/* ----------------------------------------------------- sweeper's limbo list */
bit   limbo[NB];              /* (b, tag) is in limbo                           */
byte  adv[NB];                /* E - tag, saturated at 2                        */

/* ----------------------------------------------------- per-allocator state */
byte  acls[NT];               /* the class this allocator allocates            */
byte  cur[NT];                /* its OWNED block, or NIL                        */
byte  last[NT];               /* R1: remembered block (b) or NIL ...            */
byte  lastg[NT];              /*     ... and its generation g                   */
byte  ptr[NT];                /* block pointer held in a refill (A2..A6, R2..R3)*/
byte  wg[NT];                 /* generation in the loaded word w (0: none)      */

/* ------------------------------------------------------------------ ghosts */
bit   freed[NB];              /* block is in the pool (freed by S4)             */
byte  owners[NB];             /* threads that hold b exclusively (OWNED or
                                 SWEEPING); invariant: <= 1                     */
bit   ptr_freed[NT];          /* ptr[t] was freed since t loaded it             */
bit   last_freed[NT];         /* last[t] was freed since t remembered it        */

hidden byte tmp, tmp2;        /* scratch inside d_steps (not in the state)      */

/* ---------------------------------------------------------------- helpers */

/* (2) no block held by two threads at once */
inline take_exclusive(b) {
  owners[b]++;
  assert(owners[b] == 1)
}

/* Sweep the block's cell (caller holds b exclusively: SWEEPING or OWNED).
 * A cell is freed unless its live bit is set and it is marked (reachable).
 * (3) no live cell swept: a cell someone still uses must survive.           */
inline sweep_cell(b) {
  assert(cell[b] != INUSE || lb[b] == 1);
  if
  :: lb[b] == 1 && cell[b] == DEAD -> lb[b] = 0; cell[b] = FREE
  :: else -> skip
  fi
}

/* Pool: the smallest generation in 1..NGEN that no one holds for block b. */
inline fresh_generation(b) {
  tmp = 1;
  do
  :: tmp > NGEN -> assert(false)          /* NGEN too small */
  :: tmp <= NGEN ->
       tmp2 = (gen[b] == tmp);
       for (i2 : 0 .. NT-1) {
         tmp2 = tmp2 || (last[i2] == b && lastg[i2] == tmp) || (ptr[i2] == b && wg[i2] == tmp)
       }
       i2 = 0;
       if
       :: tmp2 -> tmp++
       :: else -> break
       fi
  od;
  gen[b] = tmp
}

/* ============================================================== allocator */
proctype Allocator(byte t)
{
  byte b;          /* block pointer (local)                                  */
  mtype ws;        /* state part of the loaded word w                        */
  byte i;          /* registry slot being scanned                            */
  byte e;          /* epoch loaded in A1                                     */
  bit claimed;
  byte i2;         /* loop index of fresh_generation (always 0 outside it)   */

  do
  /* -------------------------------------------- holding a block (OWNED) */
  :: cur[t] != NIL ->
       if
       :: atomic { cell[cur[t]] == FREE ->
            /* fast path: allocate the cell.  Only the owner touches it; the
               live bit is not written until give-up. */
            assert(!freed[cur[t]] && st[cur[t]] == OWNED && own[cur[t]] == t);
            cell[cur[t]] = INUSE }
       :: atomic {
            /* give up: OWNED(t) -> FULL | SWEPT by a release store.  First the
               allocations are recorded in the live bitmap; the mutator may drop
               the object before the next mark (it becomes DEAD). */
            b = cur[t];
            assert(st[b] == OWNED && own[b] == t);
            if
            :: cell[b] == INUSE ->
                 lb[b] = 1;
                 if
                 :: skip                 /* still reachable */
                 :: cell[b] = DEAD       /* garbage at the next collection */
                 fi;
                 st[b] = FULL
            :: else ->
                 st[b] = SWEPT
            fi;
            own[b] = 0;
            owners[b]--;
            cur[t] = NIL;
            /* R1: remember (b, g) */
            last[t] = b; lastg[t] = gen[b]; last_freed[t] = 0;
            b = 0 }
       fi

  /* ------------------------------------------- refill: re-claim (no pin) */
  :: cur[t] == NIL && last[t] != NIL ->
R2_load:
       /* R2: w := b->state.load(acquire) -- b may have been freed and
          recycled; the pool never unmaps it, so the load is safe. */
       d_step { b = last[t]; ptr[t] = b; ws = st[b]; wg[t] = gen[b] }
R3_check:
       /* R3: if w.generation == g and w.state in {SWEPT, EMPTY}: CAS */
       if
#ifdef MUTANT_NO_GENERATION
       :: (ws == SWEPT || ws == EMPTY) ->     /* mutant (a): state only */
#else
       :: wg[t] == lastg[t] && (ws == SWEPT || ws == EMPTY) ->
#endif
R3_cas:
            atomic {
              if
              :: st[b] == ws && gen[b] == wg[t] ->   /* CAS(b->state, w, w.with(OWNED, t)) */
                   st[b] = OWNED; own[b] = t;
                   /* (1) never claim a block recycled since it was remembered */
                   assert(!last_freed[t] && !freed[b]);
                   /* (4) the claimed block has the claimer's class */
                   assert(cls[b] == acls[t]);
                   take_exclusive(b);
                   cur[t] = b;
                   tmp = 1  /* PROBE:r3_claimed */
              :: else -> skip                        /* CAS lost */
              fi }
       :: wg[t] != lastg[t] ->
            tmp = 1  /* PROBE:r3_generation_rejects */
       :: else -> skip
       fi;
       d_step { last[t] = NIL; lastg[t] = 0; last_freed[t] = 0;
                ptr[t] = NIL; wg[t] = 0; b = 0; ws = 0 }

  /* -------------------------------------------- refill: pinned claim scan */
  :: cur[t] == NIL ->
#ifndef MUTANT_NO_PIN
A1_pin:
       /* A1: pin: e := E.load(seq_cst); L[t].store(e<<1 | 1, seq_cst) */
       e = E;
       d_step { Lep[t] = e; Lpin[t] = 1; e = 0 }
#endif
       i = acls[t] * NS;
       do
       :: i < acls[t] * NS + NS ->
A2_load:
            /* A2: b := slot[i].load(seq_cst) */
            d_step { b = slot[i]; ptr[t] = b; ptr_freed[t] = 0 }
            if
            :: b != NIL ->
A3_read:
                 /* A3: w := b->state.load(acquire) -- pinned: b is not freed
                    (1) no read of a freed block on the pinned path */
                 d_step { assert(!ptr_freed[t] && !freed[b]);
                          ws = st[b]; wg[t] = gen[b] }
                 /* A4: if w.state in {SWEPT, EMPTY, UNSWEPT} */
                 if
                 :: ws == SWEPT || ws == EMPTY || ws == UNSWEPT ->
A5_cas:
                      /* A5: CAS(b->state, w, w.with(OWNED, t)); generation included */
                      atomic {
                        if
                        :: st[b] == ws && gen[b] == wg[t] ->
                             st[b] = OWNED; own[b] = t;
                             assert(!ptr_freed[t] && !freed[b]);   /* (1) */
                             assert(cls[b] == acls[t]);            /* (4) */
                             take_exclusive(b);                    /* (2) */
                             cur[t] = b; claimed = 1;
                             /* a lazily swept block: the claimer sweeps it
                                (it is OWNED, so nobody else touches it) */
                             if
                             :: ws == UNSWEPT -> sweep_cell(b)
                             :: else -> skip
                             fi
                        :: else -> skip                    /* CAS lost: skip b */
                        fi }
                 :: else -> skip                           /* not claimable */
                 fi
            :: else -> skip                                /* empty slot */
            fi;
            d_step { ptr[t] = NIL; wg[t] = 0; ptr_freed[t] = 0; b = 0; ws = 0 }
            if
            :: claimed -> i = 0; break                     /* A6: got one */
            :: else -> i++
            fi
       :: else -> i = 0; break
       od;
#ifndef MUTANT_NO_PIN
A7_unpin:
       /* A6/A7: unpin: L[t].store(0, release) (with or without a block) */
       atomic { Lep[t] = 0; Lpin[t] = 0 }
#endif
       if
       :: claimed -> claimed = 0      /* A6: b is OWNED by t, kept past the pin */
       :: else ->
A7_fresh:
            /* A7: nothing claimed: take a fresh block from the pool.  No pin:
               the pool re-formats it (new generation, our class), it is OWNED
               before it is published in a registry slot. */
            atomic {
              b = 0;
              do
              :: b < NB && freed[b] -> break
              :: b < NB -> b++
              :: else -> b = NIL; break
              od;
              if
              :: b != NIL ->
                   freed[b] = 0;
                   fresh_generation(b);
                   if
                   :: cls[b] != acls[t] -> tmp = 1  /* PROBE:cross_class_recycle */
                   :: else -> skip
                   fi;
                   cls[b] = acls[t];
                   st[b] = OWNED; own[b] = t;
                   cell[b] = FREE; lb[b] = 0;
                   take_exclusive(b);
                   cur[t] = b;
                   /* publish in a free slot of our directory */
                   i = acls[t] * NS;
                   do
                   :: slot[i] == NIL -> slot[i] = b; break
                   :: else -> i++; assert(i < acls[t] * NS + NS)
                   od;
                   i = 0; b = 0
              :: else -> b = 0                        /* pool empty: retry later */
              fi }
       fi
  od
}

/* ================================================================ sweeper */
proctype Sweeper()
{
  byte j;          /* registry slot */
  byte b;          /* block pointer */
  byte e;          /* epoch loaded in S3 */
  byte u;          /* thread whose record S3 reads */
  bit busy;        /* we hold b: SWEEPING (S1) or just RETIRED (S2) */
  bit stop;        /* S3 gives up */

  do
  :: j = 0;
     do
     :: j < NSLOT ->
S1_sweep:
          /* S1: CAS UNSWEPT|FULL|SWEPT -> SWEEPING(sweeper) on the block found
             in slot j (no pin: only the sweeper frees).  Alternatively the
             collector leaves FULL|SWEPT blocks to lazy sweeping (-> UNSWEPT). */
          atomic {
            b = slot[j];
            if
            :: b != NIL && (st[b] == FULL || st[b] == SWEPT || st[b] == UNSWEPT) ->
                 if
                 :: st[b] = SWEEPING; own[b] = SWEEPER; take_exclusive(b); busy = 1
                 :: st[b] != UNSWEPT -> st[b] = UNSWEPT     /* lazy: a claimer sweeps */
                 :: skip                                     /* not this round */
                 fi
            :: else -> skip
            fi }
          if
          :: busy ->
               /* S1: sweep cells; store SWEPT | EMPTY | FULL (one cell:
                  EMPTY or FULL) */
               d_step { sweep_cell(b);
                        st[b] = (lb[b] -> FULL : EMPTY); own[b] = 0;
                        owners[b]--; busy = 0 }
          :: else -> skip
          fi;
S2_retire:
          /* S2: retire (EMPTY, beyond the retention budget; the limbo cap is
             >= NB, so never reached): CAS EMPTY -> RETIRED */
          atomic {
            b = slot[j];
            if
            :: b != NIL && st[b] == EMPTY ->
                 if
                 :: st[b] = RETIRED; busy = 1
                 :: skip                                     /* keep it for reuse */
                 fi
            :: else -> skip
            fi }
          if
          :: busy ->
S2_unlink:
               /* S2: slot[i].store(nullptr, seq_cst); tag := E.load(seq_cst);
                  limbo.push(b, tag).  E is written only by this process, so
                  the unlink and the tag load form one step here. */
               d_step { slot[j] = NIL; limbo[b] = 1; adv[b] = 0; busy = 0 }
               if
               :: b == 0 -> tmp = 1   /* PROBE:retire_b0 */
               :: else -> skip
               fi
          :: else -> skip
          fi;
          d_step { b = 0; j++ }
     :: else -> j = 0; break
     od;

S3_advance:
     /* S3: e := E.load(seq_cst); for each registered thread u:
            l := L[u].load(seq_cst); if pinned(l) and epoch(l) != e: give up */
     e = E;
     u = 0;
     do
     :: u < NT ->
S3_scan:
          d_step {
#ifdef MUTANT_ADVANCE_UNCHECKED
            stop = (u == 0 && Lpin[u] && Lep[u] != e);   /* mutant (b): thread 0 only */
#else
            stop = (Lpin[u] && Lep[u] != e);
#endif
            u++ }
          if
          :: stop -> break
          :: else -> skip
          fi
     :: else -> break
     od;
     if
     :: !stop ->
          /* S3: E.compare_exchange(e, e+1) -- the sweeper is E's only writer,
             so it succeeds; every limbo entry is one advance older */
          d_step {
            E = (e + 1) % NEPOCH;
            for (b : 0 .. NB-1) {
              if
              :: limbo[b] && adv[b] < 2 -> adv[b]++
              :: else -> skip
              fi
            }
            b = 0 }
     :: else -> stop = 0     /* PROBE:advance_blocked */
     fi;
     d_step { u = 0; e = 0 }

S4_free:
     /* S4: for (b, tag) in limbo with E >= tag + 2: pool.release(b) */
     b = 0;
     do
     :: b < NB ->
          if
          :: limbo[b] && adv[b] >= GRACE ->
               atomic {
                 assert(st[b] == RETIRED && owners[b] == 0);
                 assert(cell[b] != INUSE);                 /* (3) */
                 limbo[b] = 0; adv[b] = 0; freed[b] = 1;
                 /* ghosts: pointers to b that allocators still hold dangle */
                 for (u : 0 .. NT-1) {
                   if
                   :: ptr[u] == b -> ptr_freed[u] = 1
                   :: else -> skip
                   fi;
                   if
                   :: last[u] == b -> last_freed[u] = 1
                   :: else -> skip
                   fi
                 }
                 u = 0;
                 /* the pool keeps the header (RETIRED, g) or purges it:
                    all-zero bytes read as (POOLED, generation 0) */
                 if
                 :: skip
                 :: st[b] = POOLED; gen[b] = 0
                 fi }
          :: else -> skip
          fi;
          b++
     :: else -> b = 0; break
     od
  od
}

/* ================================================================== init */
init {
  byte k;
  atomic {
    /* blocks: b0 in class 0, b1 in class 0 or 1; both EMPTY, generation 1 */
    for (k : 0 .. NSLOT-1) { slot[k] = NIL }
    for (k : 0 .. NB-1) {
      st[k] = EMPTY; gen[k] = 1; cell[k] = FREE
    }
    cls[0] = 0; slot[0] = 0;
    if
    :: cls[1] = 0; slot[1] = 1
    :: cls[1] = 1; slot[NS] = 1
    fi;
    /* allocators: thread 0 allocates class 0, thread 1 class 0 or 1 */
    for (k : 0 .. NT-1) { cur[k] = NIL; last[k] = NIL; ptr[k] = NIL }
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

/* LTL: a retired block is eventually freed (checked with weak fairness:
 * pan -a -f; allocators loop forever and pass quiescent points outside A1..A7,
 * the sweeper keeps trying to advance and free). */
#define retired_b0 (limbo[0] == 1)
#define freed_b0   (freed[0] == 1)
ltl retire_then_free { [] (retired_b0 -> <> freed_b0) }
