/*
 * termination.pml -- the termination protocol of parallel marking
 * (collector/src/mark_work.h, MarkWorkPool; papers/collector.md "Parallel
 * marking").
 *
 * N workers drain a mark. Each holds items on its own mark stack
 * (held[w]); tracing an item may push up to two new ones, from a finite
 * budget (the unmarked objects left). A worker may donate an item to the
 * shared pool at any time it holds one (the real donor's wants_work test
 * is a heuristic, so every donation is allowed here). A worker whose stack
 * is empty runs take_or_terminate:
 *
 *   T1  take a segment from the pool (under the pool's mutex): back to work
 *   T2  busy-- (idle)
 *   T3  (abort: not modelled; it only makes workers leave)
 *   T4  pool > 0: busy++, THEN take: back to work
 *   T5            nothing left to take: busy--
 *   T6  busy == 0: terminated
 *   T7  otherwise wait (the loop blocks until T4 or T6 can run)
 *
 * Properties (assertions; safety search, exhaustive):
 *   (1) a worker that concludes "terminated" finds no item anywhere: no
 *       worker holds one and the pool is empty
 *   (2) when every worker has terminated, every item made was traced
 *   (3) no invalid end state: no worker waits for ever (the search reports
 *       a state where all are blocked)
 *
 * Reachability probes (check_model.sh checks that each is executed):
 *   PROBE:donated  PROBE:reactivated  PROBE:reactivate_failed  PROBE:terminated
 *
 * Planted mutants (-DMUTANT_<X>), each must violate (1):
 *   IDLE_BEFORE_PUBLISH  a worker that donates its last item counts itself
 *                        idle (busy--) before the item is in the pool
 *   REACTIVATE_LATE      T4 takes the segment first and only then busy++
 *   CHECKS_POOL_ONLY     T6 concludes from the pool's counter alone
 *                        (pool == 0) instead of busy == 0
 */

#define N 3
#define BUDGET 4

byte pool = 0;          /* MarkWorkPool::pool_ (size_ mirrors it) */
byte busy = N;        /* MarkWorkPool::active_, after reset(N) */
byte held[N];          /* items on each worker's mark stack */
byte budget = BUDGET;   /* items that tracing may still push */
byte traced = 0;
byte finished = 0;

#define outstanding (held[0] + held[1] + held[2] + pool)

#ifdef MUTANT_CHECKS_POOL_ONLY
#define TERMINATED (pool == 0)
#else
#define TERMINATED (busy == 0)
#endif

proctype worker(byte me) {
  bool got;
drain:
  do
  :: held[me] > 0 ->
     if
     :: d_step { held[me]--; traced++ }                                /* a leaf */
     :: d_step { budget > 0 -> budget--; traced++ }                     /* pushes one */
     :: d_step { budget > 1 -> budget = budget - 2; held[me]++; traced++ } /* pushes two */
     fi
  :: held[me] > 0 ->   /* donate: the segment is in the pool before donate returns */
#ifdef MUTANT_IDLE_BEFORE_PUBLISH
     if
     :: held[me] == 1 ->
        busy--;
        d_step { held[me]--; pool++ };
        goto idle
     :: else -> d_step { held[me]--; pool++ }
     fi;
#else
     d_step { held[me]--; pool++ };
#endif
     printf("PROBE:donated\n")
  :: held[me] == 0 -> break
  od;
  /* T1 */
  atomic {
    if
    :: pool > 0 -> pool--; held[me]++; got = true
    :: else -> got = false
    fi
  };
  if
  :: got -> goto drain
  :: else -> skip
  fi;
  busy--;   /* T2 */
idle:
  do
  :: pool > 0 ->   /* T4: a read of the pool's size, then (not atomically) */
#ifdef MUTANT_REACTIVATE_LATE
     atomic {
       if
       :: pool > 0 -> pool--; held[me]++; got = true
       :: else -> got = false
       fi
     };
     busy++;
#else
     busy++;
     atomic {
       if
       :: pool > 0 -> pool--; held[me]++; got = true
       :: else -> got = false
       fi
     };
#endif
     if
     :: got -> printf("PROBE:reactivated\n"); goto drain
     :: else -> busy--; printf("PROBE:reactivate_failed\n")   /* T5 */
     fi
  :: TERMINATED -> break   /* T6 */
  od;
  assert(outstanding == 0);   /* (1) */
  printf("PROBE:terminated\n");
  finished++
}

init {
  held[0] = 1;   /* the roots, on worker 0 */
  atomic {
    run worker(0);
    run worker(1);
    run worker(2)
  };
  finished == N;
  assert(outstanding == 0 && traced == 1 + BUDGET - budget)   /* (2) */
}
