// The concurrent sweeper: a background thread, owned by its creator (the
// heap), that does the reclaim work nobody else needs to do on a mutator:
//
//   S1 sweep    UNSWEPT blocks no allocator has claimed: CAS to SWEEPING,
//               sweep with the cycle's liveness predicate, store SWEPT/EMPTY
//   S2 retire   EMPTY blocks beyond a per-directory retention budget, while
//               the limbo holds fewer than its cap
//   S3 advance  the epoch, when every pinned thread has caught up
//   S4 free     retired blocks whose grace period is over, to the pool (the
//               pool returns their pages to the OS after its delay)
//
// Why it is correct. Every step is a transition of the handoff protocol
// (papers/handoff.md) and relies only on the block state word and the epoch
// domain (allocator/include/handoff/epoch.h): the sweeper never touches an
// OWNED block (S1 claims by CAS and skips what it loses), and it frees only
// through the limbo, so a block leaves for the pool only after a grace
// period. Its registry walks run pinned like every other reader's: it is
// not the only thread that may free (Allocator::release_empty_blocks may run
// on any thread, papers/handoff.md "Who may free"), so a block it read from
// the registry could otherwise be freed under it.
//
// Allocators that want a block the sweeper is sweeping *skip* it (their claim
// CAS fails on SWEEPING) rather than wait or help: a refill must never block
// on another thread, the skipped block comes back SWEPT or EMPTY within one
// block's sweep, and the allocator's next refill or the next cycle finds it.
//
// Pausing. pause() returns once the sweeper holds no block (it checks between
// blocks), so a stopped world, or begin_cycle(), never races with a sweep in
// progress (DESIGN.md invariant 4: marking and sweeping never race).
//
// What ThreadSanitizer sees: the state-word CASes and release stores, the
// seq_cst epoch operations, and this class's mutex and condition variable;
// nothing relies on a fence.
#pragma once

#include <handoff/allocator.h>
#include <handoff/liveness.h>
#include <handoff/tunables.h>

#include <atomic>
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

  static std::span<const TunableSpec<SweeperConfig>> table();
  static SweeperConfig from_environment();
};

struct SweeperStats {
  std::uint64_t passes = 0;
  std::uint64_t blocks_swept = 0;   // S1 done on the sweeper thread
  std::uint64_t cells_freed = 0;
  std::uint64_t blocks_retired = 0; // S2
  std::uint64_t blocks_freed = 0;   // S4
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
  // New work is available (blocks emptied by an eager sweep, say).
  void wake();

  SweeperStats stats() const;
  const SweeperConfig& config() const noexcept { return config_; }

 private:
  void run();
  // `walk`: also S1 and S2, which read every block's header.
  bool pass(bool walk);
  bool sweep_unswept_blocks();
  bool pause_requested() const noexcept { return pause_requested_.load(std::memory_order_acquire); }

  Allocator& heap_;
  const SweeperConfig config_;
  mutable std::mutex mutex_;
  std::condition_variable wake_cv_;
  std::condition_variable idle_cv_;
  bool stop_ = false;
  bool work_ = false;
  bool in_pass_ = false;
  std::atomic<bool> pause_requested_{false};
  std::atomic<std::uint64_t> passes_{0};
  std::atomic<std::uint64_t> blocks_swept_{0};
  std::atomic<std::uint64_t> cells_freed_{0};
  std::atomic<std::uint64_t> blocks_retired_{0};
  std::atomic<std::uint64_t> blocks_freed_{0};
  std::thread thread_;
};

}  // namespace handoff
