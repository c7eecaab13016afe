// Work sharing and termination for the parallel markers.
//
// What it protects: that a parallel drain ends only when every reachable
// object has been traced, and that it ends (no worker waits for ever), also
// when a user's trace() throws on one of the workers.
//
// The pieces. Each worker (a Marker) has its own mark stack and pops and
// pushes there without synchronisation. A worker whose stack holds at least
// two entries while another worker is idle and the pool is empty donates
// the bottom half of its stack as one segment (donate). A worker whose
// stack is empty asks take_or_terminate for a segment; it returns false
// only when the drain is over.
//
//   pool_    the donated segments (mutex_); size_ mirrors their number so
//            that polls need no lock
//   active_  workers that hold work or may take some: every worker at the
//            start (reset), minus those idle in take_or_terminate. A worker
//            still running the round's root or remembered-set tasks
//            (Marker::run_phases) has not reached take_or_terminate, so it
//            is counted: to the protocol it is a worker pushing onto its
//            own stack
//
// The protocol (a worker's side of take_or_terminate; papers/termination.pml
// is this loop, and papers/collector.md "Parallel marking" gives the proof):
//   T1  take a segment: done (still active)
//   T2  active_ -= 1                                    (now idle)
//   T3  loop: aborted: return false
//   T4        size_ > 0:  active_ += 1, THEN take a segment: done;
//   T5                    none left (another took it): active_ -= 1
//   T6        active_ == 0: return false                (terminated)
//   T7        back off (yield, then sleep briefly)
// Donors are active (they hold work), and a segment is in the pool (T1/T4
// can take it) before donate returns.
//
// Why it is correct. Claim: whenever active_ == 0, the pool is empty and no
// worker holds work, and it stays so. A worker holds work only while it is
// counted in active_: at the start, and after T4 counted it before it took
// anything; it leaves the count (T2, T5) only after a take found the pool
// empty. Only a counted worker donates. So take the decrement that brings
// active_ to 0, by worker w after its failed take at time t: every other
// worker was uncounted then (it would have to decrement again later),
// hence held nothing and could not donate after t; and at t the pool was
// empty, and w donated nothing after t. A spurious T4 (size_ read stale) can
// raise active_ from 0 again, but that worker finds nothing and leaves at
// T5. Termination is therefore a stable property, and a stale read of
// active_ == 0 is still true. Progress: a segment in the pool is seen by
// every idle worker within one back-off, and each trace step shrinks the
// finite set of unmarked objects.
//
// Orders: active_ and size_ are seq_cst, and the pool's segments move under
// mutex_, so the stores of a donor's objects happen before the taker's
// reads of them (also in ThreadSanitizer's view). The objects themselves
// were written by mutators before the world stopped; the workers start
// after the collecting thread, through MarkerThreads' mutex.
//
// Abort (a trace() threw): the worker calls abort() and leaves; every other
// worker sees aborted() at its next poll (every kPollInterval traced
// objects, and in T3) and leaves with its stack abandoned; the collecting
// thread rethrows the first exception (MarkerThreads::run).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

namespace handoff::detail {

class MarkWorkPool {
 public:
  using Segment = std::vector<const void*>;

  // Starts a drain of `workers` workers, all active, none aborted.
  void reset(std::size_t workers) noexcept;
  // True when some worker is idle and the pool is empty: a worker with work
  // to spare should donate.
  bool wants_work() const noexcept {
    return active_.load(std::memory_order_relaxed) < workers_ && size_.load(std::memory_order_relaxed) == 0;
  }
  // Publishes a segment (the caller is active and keeps going).
  void donate(Segment&& segment);
  // `out` empty on entry. True: `out` holds a segment to trace. False: the
  // drain is over (every worker is out of work) or aborted.
  bool take_or_terminate(Segment& out);
  void abort() noexcept { aborted_.store(true, std::memory_order_relaxed); }
  bool aborted() const noexcept { return aborted_.load(std::memory_order_relaxed); }
  // Drops every segment left after an abort.
  void clear();
  std::uint64_t donations() const noexcept { return donations_.load(std::memory_order_relaxed); }
  // T7's wait, the `spins`-th time in a row: yield, then brief sleeps, so
  // that more workers than cores do not starve the ones holding work.
  static void back_off(unsigned spins);

 private:
  bool try_take(Segment& out);

  std::mutex mutex_;
  std::vector<Segment> pool_;  // mutex_
  std::atomic<std::size_t> size_{0};
  std::atomic<std::size_t> active_{0};
  std::size_t workers_ = 0;  // set by reset, before the workers start
  std::atomic<bool> aborted_{false};
  std::atomic<std::uint64_t> donations_{0};
};

}  // namespace handoff::detail
