/*
 * park.pml -- Promela model of the park/stop handshake: the thread state
 * word of collector/src/safepoint.cpp (the essay at its top) and the
 * stop-the-world wait of HeapInternals::collect.
 *
 * Checked by papers/check_model.sh (its park-model block); described in
 * papers/collector.md ("Parking").  Each step is under a comment naming the
 * code it stands for.
 *
 * Actors: NT = 2 mutator threads, one collector process (a thread that
 * collects; the code skips its own word, so it is not a mutator here).
 * Shared state: each thread's state word (st: RUNNING, STOPPED, PARKED; F:
 * the collector's stop flag), Heap::stop_requested_ (stop_req), the heap
 * mutex and the counters it guards (collecting, stopped, parked).
 * Ghosts: snap_ok[t] (thread t's published stack snapshot equals what its
 * stack above the published top and its registers hold now: set by
 * capture_stack, cleared whenever the thread runs heap code), in_gc (the
 * collector is between "the world is stopped" and clearing the flags).
 *
 * Atomicity.  A step is one access to shared memory by the code: the park
 * and unpark CAS, the collector's fetch_or and fetch_and, each one step, as
 * they are one read-modify-write of one word.  Everything done under the
 * heap mutex is modelled with the mutex (lock, unlock, wait_until); the
 * steps inside may be split or merged freely since no other process can
 * take the mutex meanwhile, and the fast paths, which do not take it, touch
 * only the state words.  The condition variable is modelled as "wait, with
 * the mutex free, until the predicate holds, then take the mutex": every
 * change to a predicate happens under the mutex and is followed by a
 * notify_all, so no wake-up is lost, and spurious ones only recheck.
 * Memory is sequentially consistent: in the code, all the accesses that
 * race are read-modify-writes of the same word (ordered by its modification
 * order, so acquire/release on them is enough; there is no store-buffering
 * pattern), or ordered by the mutex.
 *
 * Properties (assertions, and pan's invalid end states):
 *   (1) a snapshot the collector scans is current, and its thread is not
 *       running (scan)
 *   (2) no mutator runs heap code, or rewrites its snapshot, while the
 *       world is stopped (run, capture)
 *   (3) a parked thread never holds up a collection: a mutator may stay
 *       parked for ever (end_blocked), and every state in which nothing
 *       can move has every process at an end label (pan's invalid end
 *       states); so a collection never waits for a parked thread
 *
 * Mutants (each knocks out one part of the handshake; each must fail):
 *   -DMUTANT_PUBLISH_LATE      capture_stack after the park CAS flips the word
 *                              to parked
 *   -DMUTANT_UNPARK_UNCHECKED  leave parked with a plain store, not checking
 *                              the stop flag
 *   -DMUTANT_PARK_SPLIT        park as a load of the word and a later store
 *                              (no CAS)
 *   -DMUTANT_SLOW_UNCOUNTED    the park slow path parks without counting itself
 *
 * Reachability probes: statements PROBE:<name> must be reached in the
 * checked run, so the slow paths and the counted-parked case really occur.
 */

#define NT    2
#define NONE  255
#define COLL  NT                  /* the collector's id as mutex holder */

mtype = { RUNNING, STOPPED, PARKED };

mtype st[NT];                     /* state word: the thread's state         */
bit   F[NT];                      /* state word: kStopRequested             */
bit   snap_ok[NT];                /* ghost: the snapshot is current         */
bit   stop_req;                   /* Heap::stop_requested_                  */
bit   collecting;                 /* HeapInternals::collecting (mutex)      */
bit   in_gc;                      /* ghost: world stopped, collection runs  */
byte  stopped;                    /* HeapInternals::stopped (mutex)         */
byte  parked;                     /* HeapInternals::parked (mutex)          */
byte  mtx = NONE;                 /* the heap mutex: its holder             */

inline lock(me)   { atomic { mtx == NONE -> mtx = me } }
inline unlock()   { mtx = NONE }
/* cv.wait(lock, pred) */
#define wait_until(me, pred) mtx = NONE; atomic { (pred) && mtx == NONE -> mtx = me }

/* capture_stack: the snapshot is written; the world must not be stopped,
 * or a stopped-world reader could be reading it meanwhile */
inline capture(t) { assert(!in_gc); snap_ok[t] = 1 }

proctype Mutator(byte t) {
  bit slow;
end_running:
  do
  :: /* running: heap code; the frames above any earlier top change */
     assert(!in_gc); snap_ok[t] = 0
  :: /* Heap::safepoint -> stop_at_safepoint */
     stop_req ->
       capture(t);
       lock(t);
       if
       :: stop_req ->
            /* wait_stopped */
            st[t] = STOPPED; stopped++;
            printf("PROBE:stopped\n");
            wait_until(t, !stop_req);
            stopped--; st[t] = RUNNING
       :: else -> skip
       fi;
       unlock()
  :: /* ParkedScope constructor */
#ifndef MUTANT_PUBLISH_LATE
     capture(t);
#endif
#ifdef MUTANT_PARK_SPLIT
     /* if (state.load() == kRunning) state.store(kParked): the store writes
      * the whole word, so a flag set in between is lost */
     slow = (st[t] != RUNNING || F[t] != 0);
     if
     :: !slow -> st[t] = PARKED; F[t] = 0
     :: else -> skip
     fi;
#else
     atomic {        /* CAS running -> parked (release) */
       if
       :: st[t] == RUNNING && F[t] == 0 -> st[t] = PARKED; slow = 0
       :: else -> slow = 1
       fi
     }
#endif
#ifdef MUTANT_PUBLISH_LATE
     capture(t);
#endif
     if
     :: slow ->
          /* Heap::park_slow: under the mutex, F is the stop waiting for us */
          lock(t);
          st[t] = PARKED;
          if
          :: F[t] ->
#ifndef MUTANT_SLOW_UNCOUNTED
               parked++;
#endif
               printf("PROBE:park_slow_counted\n")
          :: else -> skip
          fi;
          unlock()
     :: else -> skip
     fi;
     /* blocked on something else (a lock, a queue, I/O), perhaps for ever:
      * a collection must not wait for it */
     if
     :: true -> end_blocked: false
     :: true -> skip
     fi;
     /* the ParkedScope destructor */
#ifdef MUTANT_UNPARK_UNCHECKED
     st[t] = RUNNING; slow = 0;
#else
     atomic {        /* CAS parked -> running (acquire) */
       if
       :: st[t] == PARKED && F[t] == 0 -> st[t] = RUNNING; slow = 0
       :: else -> slow = 1
       fi
     }
#endif
     if
     :: slow ->
          /* Heap::unpark_slow: wait until the collection ends */
          printf("PROBE:unpark_slow\n");
          lock(t);
          wait_until(t, F[t] == 0);
          st[t] = RUNNING;
          unlock()
     :: else -> skip
     fi
  od
}

proctype Collector() {
  byte t;
end_idle:
  do
  :: /* HeapInternals::collect */
     lock(COLL);
     collecting = 1;
     stop_req = 1;
     /* request_stop: fetch_or F (acq_rel) on each word */
     parked = 0;
     t = 0;
     do
     :: t < NT ->
          atomic {
            if
            :: st[t] == PARKED -> parked++; printf("PROBE:found_parked\n")
            :: else -> skip
            fi;
            F[t] = 1
          };
          t++
     :: else -> break
     od;
     wait_until(COLL, stopped + parked == NT);
     in_gc = 1;
     /* run_collection: scan each thread's snapshot (and flush its allocator) */
     t = 0;
     do
     :: t < NT -> assert(snap_ok[t] && st[t] != RUNNING); t++
     :: else -> break
     od;
     /* ... and once more, later in the same collection: still current */
     t = 0;
     do
     :: t < NT -> assert(snap_ok[t] && st[t] != RUNNING); t++
     :: else -> break
     od;
     in_gc = 0;
     /* release_stop: fetch_and ~F (release) on each word */
     t = 0;
     do
     :: t < NT -> F[t] = 0; t++
     :: else -> break
     od;
     collecting = 0;
     stop_req = 0;
     unlock()
  od
}

init {
  byte i;
  atomic {
    i = 0;
    do
    :: i < NT -> st[i] = RUNNING; run Mutator(i); i++
    :: else -> break
    od;
    run Collector()
  }
}
