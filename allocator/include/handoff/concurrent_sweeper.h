// The concurrent sweeper: a background thread, owned by its creator (the
// heap), that does the reclaim work nobody else needs to do on a mutator:
//
//   S1 sweep    UNSWEPT blocks no allocator has claimed: CAS to SWEEPING,
//               sweep with the cycle's liveness predicate, store SWEPT/EMPTY;
//               from the registry's middle, where the allocators' claim
//               lanes (which start at its two ends) arrive last
//   S2 retire   EMPTY blocks beyond a per-directory retention budget, while
//               the limbo holds fewer than its cap
//   S3 advance  the epoch, when every pinned thread has caught up
//   S4 free     retired blocks whose grace period is over, to the pool (the
//               pool returns their pages to the OS after its delay)
//
// Why it is correct. Every step is a transition of the handoff protocol
// (papers/handoff.md) and relies only on the block state word and the epoch
// domain (allocator/internal/handoff/epoch.h): the sweeper never touches an
// OWNED block (S1 claims by CAS and skips what it loses), and it frees only
// through the limbo, so a block leaves for the pool only after a grace
// period. Its registry walks (S1 here, S2 in Directory::retire_empty_blocks)
// run pinned like every other reader's: it is not the only thread that may
// free (Allocator::release_empty_blocks may run on any thread,
// papers/handoff.md "Who may free"), so a block it read from the registry
// could otherwise be freed under it. S3 and S4 run unpinned, so the sweeper
// never holds back its own grace periods.
//
// Allocators that want a block the sweeper is sweeping *skip* it (their claim
// CAS fails on SWEEPING) rather than wait or help: a refill must never block
// on another thread, the skipped block comes back SWEPT or EMPTY within one
// block's sweep, and the allocator's next refill or the next cycle finds it.
//
// Paying for itself. The sweeper's work is useful only where a mutator would
// otherwise do it on its own time. Four rules keep it from costing more
// than it saves:
//   Retention by demand (keep_last_cycle). S2 keeps, per directory, as many
//   EMPTY blocks as the last begin_lazy_sweep made UNSWEPT
//   (Directory::last_cycle_blocks): about as many as the allocators fill
//   again before the next collection. Retiring them instead sent each one
//   through the limbo and the pool and back as a fresh block (pool and
//   directory locks, a new header): in churn at 1024 B that was half of all
//   refills, against none with the sweeper off. Blocks a whole cycle left
//   unused are retired at the next one, so a heap that shrinks gives its
//   memory back one cycle later than before.
//   Back-off (back_off). While at least as many threads are attached as
//   there are online CPUs, S1 would take a core from a mutator that sweeps
//   the same blocks lazily when it claims them, so the sweeper skips S1 and
//   looks again at each poll; S2 to S4 go on. The attached count is a proxy
//   for busy mutators (a parked thread still counts), which errs towards
//   leaving the work to the mutators, i.e. towards HANDOFF_SWEEPER=0.
//   CPU share (min_cpu_percent). Back-off counts only our own threads; the
//   CPUs may also be held by other processes, and then a sweeper thread
//   that gets a core only part of the time takes it from whoever runs
//   there, our mutator included, to do work the mutator would do lazily,
//   on blocks already in its cache. The sweeper measures each S1: its
//   thread's CPU time (CLOCK_THREAD_CPUTIME_ID) against the wall time
//   from the wake() that asked for it to the end of the sweep, so that
//   waiting in the run queue for a core counts as not running (a sweep is
//   short next to a scheduler's time slice, so it is seldom preempted in
//   the middle; the wait shows before it starts). When it ran less than
//   min_cpu_percent of that time, it leaves the next
//   cycle's S1 to the allocators, then 2, 4, 8 and 16 cycles while its
//   probes keep finding the cores busy, and sweeps again from the first
//   probe that gets its share. A cycle it leaves still walks S2 and runs
//   S3 and S4. A predicate that blocks (destructors that sleep) looks the
//   same as a busy machine; that too errs towards HANDOFF_SWEEPER=0.
//   Only the sweeper thread reads and writes this state, so it needs no
//   synchronization.
//   One walk per cycle. S1 and S2 read the header of every block in the
//   registry, and its first line holds the state word that allocators
//   write at each claim and give-back; a walk costs the sweeper a miss per
//   block and makes the mutators' next write to each line they hold a
//   miss too. Only begin_cycle() and wake() start a walk. The passes that
//   follow a pass that did work only reclaim (S3, S4), and so do the polls
//   while retired blocks wait for their grace period (each of them used to
//   walk again: 264 walks for 134 collections of binary-trees at depth 17,
//   one per collection useful).
//   The exceptions are a sweep that back-off deferred, which is retried
//   at each poll, and S2 when the limbo cap stopped it, which walks again
//   at each poll until the limbo has room. Blocks that a mutator's lazy
//   sweep empties wait for the next walk.
//   Batch scheduling (batch_schedule). The collector wakes the sweeper at
//   the end of each pause (resume()). A thread woken on a core that runs
//   another usually preempts it at once (the kernel favours the sleeper),
//   and where no core is idle the core is the collector's own, so the
//   sweep ran inside the pause: in 1024 B churn on a loaded 2-core machine
//   resume() took 160 us of a 215 us pause
//   (papers/collector.md "The fixed cost of a collection"). The thread
//   therefore runs under SCHED_BATCH: the same fair share of the CPU, the
//   same nice value, but a wake-up that waits for the running thread's
//   time slice to end or a core to go idle instead of preempting. Only
//   the start of a pass is delayed; pause() waits for a pass in progress
//   as before, and a pass runs at the same priority as before once begun.
//   Quiet wake while backed off. When back-off would defer S1 anyway,
//   wake() records the work without notifying: the sweeper finds it at
//   its next poll (idle_wait_ms) and runs S2 to S4 then. Notified, it
//   woke after every collection, on a core a mutator wanted, to walk S2
//   and defer S1: in 2-thread churn at 64 to 1024 B on 2 cores the
//   sweeper cost 4 to 14% of the throughput while sweeping nothing (each
//   wake a futex syscall in the collector's pause, and a context switch;
//   papers/allocator.md, "Quiet wakes while the sweeper backs off"). Emptied
//   blocks now wait up to one poll longer for S2.
//   The rules only decide *whether* the sweeper does a step; none changes
//   a transition, so the protocol argument above is untouched.
//
// Pausing. pause() returns once the sweeper holds no block (it checks between
// blocks), so a stopped world, or begin_cycle(), never races with a sweep in
// progress (DESIGN.md invariant 4: marking and sweeping never race).
//
// Layering. DESIGN.md lists the concurrent sweeper under collector/; it lives
// in allocator/ beside the epoch domain and the limbo, whose protocol it
// runs, because it uses nothing of the collector: a program that uses the
// allocator alone gets background reclaim without linking the collector.
// The collector owns one and pauses it around each collection.
//
// What ThreadSanitizer sees: the state-word CASes and release stores, the
// seq_cst epoch operations, and this class's mutex and condition variable;
// nothing relies on a fence.
#pragma once

#include <handoff/allocator.h>
#include <handoff/liveness.h>
#include <handoff/tunables.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <span>
#include <thread>

namespace handoff {

struct SweeperConfig {
  std::uint64_t enabled = 1;             // 0: no thread; reclaim happens on mutators
  std::uint64_t start_paused = 0;        // 1: the thread starts paused until resume()
  std::uint64_t keep_empty_blocks = 64;  // per directory, kept for reuse
  std::uint64_t limbo_cap_blocks = 4096; // above it, empty blocks are not retired
  std::uint64_t idle_wait_ms = 5;        // poll interval while there is nothing to do
  std::uint64_t keep_last_cycle = 1;     // 1: also keep as many EMPTY blocks as the last cycle filled
  std::uint64_t back_off = 1;            // 1: no S1 while attached threads >= online CPUs
  std::uint64_t min_cpu_percent = 50;    // a sweep that got less of a core leaves the next cycles' S1
  std::uint64_t batch_schedule = 1;      // 1: the thread runs under SCHED_BATCH (its wake-up preempts no one)

  static std::span<const TunableSpec<SweeperConfig>> table();
  static SweeperConfig from_environment();
};

struct SweeperStats {
  std::uint64_t passes = 0;
  std::uint64_t blocks_swept = 0;   // S1 done on the sweeper thread
  std::uint64_t cells_freed = 0;
  std::uint64_t blocks_retired = 0; // S2
  std::uint64_t blocks_freed = 0;   // S4
  std::uint64_t passes_backed_off = 0;  // passes that left S1 to the allocators
  std::uint64_t walks = 0;              // passes that walked the registry (S1 or S2)
  std::uint64_t cycles_left = 0;        // cycles whose S1 was left to the allocators (min_cpu_percent)
  std::uint64_t quiet_wakes = 0;        // wake()s left to the next poll: back-off would defer S1
  std::size_t limbo_blocks = 0;
  bool running = false;
};

class ConcurrentSweeper {
 public:
  explicit ConcurrentSweeper(Allocator& heap, SweeperConfig config = SweeperConfig::from_environment());
  ~ConcurrentSweeper();  // stops and joins the thread
  ConcurrentSweeper(const ConcurrentSweeper&) = delete;
  ConcurrentSweeper& operator=(const ConcurrentSweeper&) = delete;

  // Starts a reclaim cycle: pauses the sweeper, finishes the heap's previous
  // lazy sweep, begins a new one with `policy` (Allocator::begin_lazy_sweep,
  // whose preconditions apply), resumes and wakes the sweeper.
  SweepTotals begin_cycle(const SweepPolicy& policy);

  // Returns once the sweeper holds no block; it stays idle until resume().
  void pause();
  void resume();
  // New work is available (blocks emptied by an eager sweep, say). The
  // sweeper starts on it at once, or at its next poll while back-off
  // would defer S1 ("Quiet wake" above).
  void wake();

  SweeperStats stats() const;
  const SweeperConfig& config() const noexcept { return config_; }

 private:
  void run();
  struct PassResult {
    bool did_work = false;
    bool sweep_deferred = false;  // back-off left S1 undone; look again each poll
    bool retire_capped = false;   // S2 stopped at the limbo cap; walk S2 again each poll
  };
  // `sweep`: S1 (then S2), unless back-off defers it. `retire`: S2. S3 and
  // S4 always.
  PassResult pass(bool sweep, bool retire);
  bool sweep_unswept_blocks();
  // Whether S1 would take a core from a mutator (back_off).
  bool mutators_fill_the_cores() const;
  // CPU share (min_cpu_percent): whether this cycle's S1 is left to the
  // allocators; and, after a sweep, how many cycles to leave.
  bool leaves_this_cycle() noexcept;
  void judge_cpu_share(std::uint64_t wall_ns, std::uint64_t cpu_ns) noexcept;
  bool pause_requested() const noexcept { return pause_requested_.load(std::memory_order_acquire); }

  Allocator& heap_;
  const SweeperConfig config_;
  mutable std::mutex mutex_;
  std::condition_variable wake_cv_;
  std::condition_variable idle_cv_;
  bool stop_ = false;
  bool work_ = false;
  bool in_pass_ = false;
  bool sweep_deferred_ = false;  // S1 was left undone by back-off; look again each poll
  bool retire_capped_ = false;   // S2 stopped at the limbo cap; walk S2 again each poll
  bool reclaim_again_ = false;   // the last pass did work: reclaim again now, without a walk
  std::chrono::steady_clock::time_point woken_at_{};  // the last wake(); guarded by mutex_
  bool woken_quietly_ = false;   // the last wake() did not notify; guarded by mutex_
  std::chrono::steady_clock::time_point sweep_clock_start_{};  // this pass's CPU share is judged from here
  unsigned short_sweeps_ = 0;    // sweeps in a row that got less than min_cpu_percent of a core
  unsigned leave_cycles_ = 0;    // cycles whose S1 is still to be left to the allocators
  const std::size_t online_cpus_;
  std::atomic<bool> pause_requested_{false};
  std::atomic<std::uint64_t> passes_{0};
  std::atomic<std::uint64_t> blocks_swept_{0};
  std::atomic<std::uint64_t> cells_freed_{0};
  std::atomic<std::uint64_t> blocks_retired_{0};
  std::atomic<std::uint64_t> blocks_freed_{0};
  std::atomic<std::uint64_t> passes_backed_off_{0};
  std::atomic<std::uint64_t> walks_{0};
  std::atomic<std::uint64_t> quiet_wakes_{0};
  std::atomic<std::uint64_t> cycles_left_{0};
  std::thread thread_;
};

}  // namespace handoff
