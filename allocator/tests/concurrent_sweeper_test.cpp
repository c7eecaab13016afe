// The concurrent sweeper: no thread when disabled; background S1 (sweep
// UNSWEPT blocks), S2 (retire EMPTY blocks beyond the retention budget, up
// to the limbo cap), S3/S4 (advance, free after the grace period); pause()
// holding no block; prompt destruction; survivors intact; and a mutator
// allocating beside it, whose lazy sweeps and the sweeper's add up to the
// blocks that were UNSWEPT.
#include "test_support.h"

#include <handoff/block_pool.h>
#include <handoff/concurrent_sweeper.h>
#include <handoff/epoch.h>
#include <handoff/limbo.h>

#include <gtest/gtest.h>
#include <sched.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <algorithm>
#include <filesystem>
#include <functional>
#include <memory>
#include <thread>
#include <unordered_set>
#include <vector>

namespace handoff {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr std::size_t kClass = 2;  // 48-byte cells
constexpr std::size_t kCellBytes = 48;
constexpr std::size_t kWords = kCellBytes / sizeof(std::uint64_t);

const auto kTimeout = test::kSanitized ? 10s : 2s;

SweeperConfig sweeper_config(std::uint64_t keep_empty, std::uint64_t limbo_cap = 4096) {
  SweeperConfig c;
  c.enabled = 1;
  c.keep_empty_blocks = keep_empty;
  c.limbo_cap_blocks = limbo_cap;
  c.idle_wait_ms = 1;
  c.keep_last_cycle = 0;  // the retention budget alone (KeepsAsManyEmptyBlocksAsTheLastCycleFilled)
  c.back_off = 0;         // sweeps however many threads are attached (BacksOffWhileMutatorsFillTheCores)
  c.min_cpu_percent = 0;  // however long a sweep waited for a core (LeavesCyclesToTheAllocators...)
  return c;
}

bool wait_until(const std::function<bool()>& done, Clock::duration timeout = kTimeout) {
  const auto deadline = Clock::now() + timeout;
  while (!done()) {
    if (Clock::now() > deadline) return done();
    std::this_thread::sleep_for(200us);
  }
  return true;
}

std::size_t blocks_in(Allocator& heap, BlockState state) {
  std::size_t n = 0;
  for (std::size_t cls = 0; cls < kNumSizeClasses; ++cls) {
    n += directory_of(heap, cls).stats().blocks_in_state[static_cast<std::size_t>(state)];
  }
  return n;
}

// Objects: word 0 is the id, the other words a pattern of it. The
// predicates below read the id, so they need no state (they are captureless
// and stay valid for the whole lazy cycle).
void write_object(void* p, std::uint64_t id) {
  auto* w = static_cast<std::uint64_t*>(p);
  w[0] = id;
  for (std::size_t i = 1; i < kWords; ++i) w[i] = test::pattern_word(id, i);
}

bool object_intact(const void* p, std::uint64_t id) {
  const auto* w = static_cast<const std::uint64_t*>(p);
  if (w[0] != id) return false;
  for (std::size_t i = 1; i < kWords; ++i) {
    if (w[i] != test::pattern_word(id, i)) return false;
  }
  return true;
}

std::uint64_t id_of(const void* cell) { return *static_cast<const std::uint64_t*>(cell); }

const auto drop_all = [](void*) { return false; };
const auto keep_even_ids = [](void* cell) { return id_of(cell) % 2 == 0; };
// Sweeping a block takes at least ~0.2 ms: the mutator and the sweeper
// interleave instead of one of them taking every block.
const auto slow_keep_even_ids = [](void* cell) {
  MarkedBlock* b = MarkedBlock::of(cell);
  if (b->cell_start(cell) == b->cell_at(0)) std::this_thread::sleep_for(200us);
  return id_of(cell) % 2 == 0;
};
// Each block takes at least ~1 ms to sweep, so a test can catch the
// sweeper in the middle of its work.
const auto slow_drop_all = [](void* cell) {
  MarkedBlock* b = MarkedBlock::of(cell);
  if (b->cell_start(cell) == b->cell_at(0)) std::this_thread::sleep_for(1ms);
  return false;
};

// Fills `blocks` whole blocks of kClass with objects numbered from `first_id`
// and gives them back FULL. Returns the objects in allocation order.
std::vector<void*> fill_full_blocks(ThreadAllocator& thread, std::size_t blocks, std::uint64_t first_id = 0) {
  std::vector<void*> objects;
  const std::size_t n = blocks * cells_per_block(kClass);
  objects.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    void* p = thread.allocate(kCellBytes);
    write_object(p, first_id + i);
    objects.push_back(p);
  }
  thread.flush();
  EXPECT_EQ(blocks_in(thread.allocator(), BlockState::kFull), blocks);
  return objects;
}

TEST(ConcurrentSweeper, DisabledRunsNoThreadAndLeavesSweepingToMutators) {
  Allocator heap(test::default_config());
  ThreadAllocator thread(heap);
  fill_full_blocks(thread, 3);
  SweeperConfig config = sweeper_config(0);
  config.enabled = 0;
  ConcurrentSweeper sweeper(heap, config);
  EXPECT_FALSE(sweeper.stats().running);
  sweeper.begin_cycle(drop_all);
  sweeper.wake();
  std::this_thread::sleep_for(20ms);
  const SweeperStats s = sweeper.stats();
  EXPECT_FALSE(s.running);
  EXPECT_EQ(s.passes, 0u);
  EXPECT_EQ(s.blocks_swept, 0u);
  EXPECT_EQ(blocks_in(heap, BlockState::kUnswept), 3u) << "nobody swept in the background";
  sweeper.pause();  // no thread to wait for: returns at once
  sweeper.resume();
  void* p = thread.allocate(kCellBytes);  // the mutator sweeps what it claims
  EXPECT_NE(p, nullptr);
  EXPECT_EQ(thread.local_allocator(kClass).counters().lazy_sweeps, 1u);
  heap.finish_lazy_sweep();
}

TEST(ConcurrentSweeper, EnabledRunsAThread) {
  Allocator heap(test::default_config());
  ConcurrentSweeper sweeper(heap, sweeper_config(4));
  EXPECT_TRUE(sweeper.stats().running);
  EXPECT_EQ(sweeper.config().keep_empty_blocks, 4u);
  EXPECT_TRUE(wait_until([&] { return sweeper.stats().passes > 0; })) << "an idle sweeper still polls";
  EXPECT_EQ(sweeper.stats().blocks_swept, 0u);
}

// Threads of this process under SCHED_BATCH (Linux: /proc/self/task).
std::size_t batch_threads() {
  std::size_t n = 0;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    const pid_t tid = static_cast<pid_t>(std::stol(task.path().filename().string()));
    if (::sched_getscheduler(tid) == SCHED_BATCH) ++n;
  }
  return n;
}

// Header "Batch scheduling": the sweeper's thread, and only it, runs under
// SCHED_BATCH, so that waking it at the end of a pause preempts no one.
TEST(ConcurrentSweeper, RunsItsThreadUnderBatchSchedulingUnlessTurnedOff) {
  Allocator heap(test::default_config());
  const std::size_t before = batch_threads();
  SweeperConfig config = sweeper_config(4);
  {
    ConcurrentSweeper sweeper(heap, config);
    ASSERT_TRUE(wait_until([&] { return sweeper.stats().passes > 0; }));  // run() has begun
    EXPECT_EQ(batch_threads(), before + 1);
    EXPECT_NE(::sched_getscheduler(0), SCHED_BATCH) << "the thread that made the sweeper keeps its policy";
  }
  config.batch_schedule = 0;
  ConcurrentSweeper sweeper(heap, config);
  ASSERT_TRUE(wait_until([&] { return sweeper.stats().passes > 0; }));
  EXPECT_EQ(batch_threads(), before);
}

TEST(ConcurrentSweeper, SweepsRetiresAndFreesInTheBackground) {
  Allocator heap(test::default_config());
  ThreadAllocator thread(heap);  // registered, never pinned: must not hold anything up
  constexpr std::size_t kBlocks = 8;
  constexpr std::size_t kKeep = 2;
  fill_full_blocks(thread, kBlocks);
  ConcurrentSweeper sweeper(heap, sweeper_config(kKeep));
  const std::size_t in_use_before = heap.pool().stats().in_use_bytes;
  ASSERT_EQ(in_use_before, kBlocks * kBlockSize);

  sweeper.begin_cycle(drop_all);
  ASSERT_TRUE(wait_until([&] { return sweeper.stats().blocks_swept == kBlocks; }))
      << "swept " << sweeper.stats().blocks_swept << " of " << kBlocks;
  ASSERT_TRUE(wait_until([&] {
    const SweeperStats s = sweeper.stats();
    return s.blocks_freed == kBlocks - kKeep && s.limbo_blocks == 0;
  })) << "freed " << sweeper.stats().blocks_freed << ", limbo " << sweeper.stats().limbo_blocks;
  const SweeperStats s = sweeper.stats();
  EXPECT_EQ(s.cells_freed, kBlocks * cells_per_block(kClass));
  EXPECT_EQ(s.blocks_retired, kBlocks - kKeep);
  EXPECT_EQ(heap.pool().stats().in_use_bytes, kKeep * kBlockSize);
  EXPECT_EQ(heap.limbo().size(), 0u);
  EXPECT_EQ(blocks_in(heap, BlockState::kEmpty), kKeep) << "the retention budget stays in the registry";
  EXPECT_EQ(directory_of(heap, kClass).stats().blocks, kKeep);
  EXPECT_EQ(thread.local_allocator(kClass).counters().lazy_sweeps, 0u);
  EXPECT_TRUE(test::budget_identity_holds(heap));
  EXPECT_TRUE(test::pool_identities_hold(heap.pool().stats()));
  // The kept blocks serve the next allocations.
  void* p = thread.allocate(kCellBytes);
  EXPECT_EQ(heap.pool().stats().in_use_bytes, kKeep * kBlockSize) << "no fresh block was needed";
  EXPECT_EQ(MarkedBlock::of(p)->directory(), &directory_of(heap, kClass));
}

// A stalled pinned thread holds every retired block; the limbo cap bounds
// what it costs, and the rest stays EMPTY in the registry until it unpins.
TEST(ConcurrentSweeper, AStalledReaderCostsAtMostTheLimboCap) {
  Allocator heap(test::default_config());
  ThreadAllocator thread(heap);
  constexpr std::size_t kBlocks = 8;
  constexpr std::size_t kCap = 3;
  fill_full_blocks(thread, kBlocks);
  EpochParticipant* stalled = heap.epochs().register_thread();
  stalled->pin(heap.epochs().global());
  struct Unregister {  // also when an assertion below returns early
    EpochDomain& epochs;
    EpochParticipant* participant;
    ~Unregister() { epochs.unregister_thread(participant); }
  } unregister{heap.epochs(), stalled};
  {
    ConcurrentSweeper sweeper(heap, sweeper_config(0, kCap));
    sweeper.begin_cycle(drop_all);
    ASSERT_TRUE(wait_until([&] { return sweeper.stats().blocks_swept == kBlocks; }));
    ASSERT_TRUE(wait_until([&] { return sweeper.stats().blocks_retired == kCap; }));
    std::this_thread::sleep_for(20ms);  // many passes at 1 ms
    SweeperStats s = sweeper.stats();
    EXPECT_EQ(s.blocks_retired, kCap) << "retired past the limbo cap";
    EXPECT_EQ(s.blocks_freed, 0u) << "freed while a thread pinned before the retire is pinned";
    EXPECT_EQ(s.limbo_blocks, kCap);
    EXPECT_EQ(blocks_in(heap, BlockState::kEmpty), kBlocks - kCap);
    EXPECT_EQ(heap.pool().stats().in_use_bytes, kBlocks * kBlockSize);

    stalled->unpin();
    ASSERT_TRUE(wait_until([&] { return sweeper.stats().blocks_freed == kBlocks; }))
        << "freed " << sweeper.stats().blocks_freed << " after the unpin";
    s = sweeper.stats();
    EXPECT_EQ(s.blocks_retired, kBlocks);
    EXPECT_EQ(s.limbo_blocks, 0u);
    EXPECT_EQ(heap.pool().stats().in_use_bytes, 0u);
  }
}

TEST(ConcurrentSweeper, SurvivorsStayIntact) {
  Allocator heap(test::default_config());
  ThreadAllocator thread(heap);
  const std::size_t blocks = test::scaled(6, 3);
  const std::vector<void*> objects = fill_full_blocks(thread, blocks);
  ConcurrentSweeper sweeper(heap, sweeper_config(0));
  sweeper.begin_cycle(keep_even_ids);
  ASSERT_TRUE(wait_until([&] { return sweeper.stats().blocks_swept == blocks; }));
  std::size_t live = 0;
  for (std::size_t i = 0; i < objects.size(); ++i) {
    if (i % 2 == 0) {
      ++live;
      ASSERT_TRUE(object_intact(objects[i], i)) << "survivor " << i << " changed";
      ASSERT_EQ(heap.find_cell(objects[i]), objects[i]);
    } else {
      ASSERT_EQ(heap.find_cell(objects[i]), nullptr) << "dead object " << i << " still allocated";
    }
  }
  EXPECT_EQ(sweeper.stats().cells_freed, objects.size() - live);
  EXPECT_EQ(blocks_in(heap, BlockState::kSwept), blocks);
  EXPECT_EQ(sweeper.stats().blocks_retired, 0u) << "no block is empty";
  EXPECT_EQ(heap.stats().classes[kClass].live_cells, live);
  EXPECT_TRUE(test::block_identities_hold(heap));
}

// pause() returns only when the sweeper holds no block, and it stays idle
// until resume(), however often another thread wakes it.
// 40 blocks are 40 ms of sweeping at least: the first pause, 2 ms in, finds
// work left unless the test thread waited that long for a core.
TEST(ConcurrentSweeper, PauseLeavesNoBlockSweepingAndResumeContinues) {
  Allocator heap(test::default_config());
  ThreadAllocator thread(heap);
  const std::size_t blocks = 40;
  fill_full_blocks(thread, blocks);
  ConcurrentSweeper sweeper(heap, sweeper_config(blocks));
  sweeper.begin_cycle(slow_drop_all);

  std::atomic<bool> stop{false};
  std::thread waker([&] {
    while (!stop.load()) {
      sweeper.wake();
      std::this_thread::sleep_for(100us);
    }
  });
  std::size_t paused_mid_work = 0;
  for (int round = 0; round < 10; ++round) {
    std::this_thread::sleep_for(2ms);
    sweeper.pause();
    const SweeperStats at_pause = sweeper.stats();
    if (at_pause.blocks_swept < blocks) ++paused_mid_work;
    for (int look = 0; look < 3; ++look) {
      EXPECT_EQ(blocks_in(heap, BlockState::kSweeping), 0u) << "round " << round << ": a block is SWEEPING while paused";
      std::this_thread::sleep_for(1ms);
    }
    const SweeperStats later = sweeper.stats();
    EXPECT_EQ(later.blocks_swept, at_pause.blocks_swept) << "swept while paused";
    EXPECT_EQ(later.passes, at_pause.passes) << "a pass ran while paused";
    sweeper.resume();
  }
  stop.store(true);
  waker.join();
  EXPECT_GT(paused_mid_work, 0u) << "never caught the sweeper with work left";
  ASSERT_TRUE(wait_until([&] { return sweeper.stats().blocks_swept == blocks; }))
      << "after resume: swept " << sweeper.stats().blocks_swept << " of " << blocks;
  EXPECT_EQ(blocks_in(heap, BlockState::kUnswept), 0u);
  EXPECT_EQ(blocks_in(heap, BlockState::kEmpty), blocks);
}

// Promptly: the join leaves the rest of the pass undone. That is what the
// UNSWEPT blocks left behind show; the time bound only catches a join that
// hangs, because on a loaded machine the woken sweeper may wait for a core
// (it runs under SCHED_BATCH) longer than any bound near the 1 ms a block
// takes. 200 blocks are 200 ms of sweeping at least, so a test thread
// preempted between its check and the reset still finds work left.
TEST(ConcurrentSweeper, DestructionJoinsPromptlyInTheMiddleOfWork) {
  Allocator heap(test::default_config());
  ThreadAllocator thread(heap);
  const std::size_t blocks = 200;  // >= 200 ms of sweeping
  fill_full_blocks(thread, blocks);
  auto sweeper = std::make_unique<ConcurrentSweeper>(heap, sweeper_config(0));
  sweeper->begin_cycle(slow_drop_all);
  ASSERT_TRUE(wait_until([&] { return sweeper->stats().blocks_swept >= 2; }));
  const auto start = Clock::now();
  sweeper.reset();  // stops and joins
  const auto join_time = Clock::now() - start;
  EXPECT_LT(join_time, kTimeout)
      << "joining took " << std::chrono::duration_cast<std::chrono::milliseconds>(join_time).count() << " ms";
  EXPECT_GT(blocks_in(heap, BlockState::kUnswept), 0u) << "the sweeper finished everything before it stopped";
  EXPECT_EQ(blocks_in(heap, BlockState::kSweeping), 0u) << "a block was left SWEEPING";
  heap.finish_lazy_sweep();  // what the sweeper left is still swept correctly
  EXPECT_EQ(blocks_in(heap, BlockState::kUnswept), 0u);
  EXPECT_EQ(blocks_in(heap, BlockState::kEmpty), blocks) << "the stopped pass retired nothing";
}

TEST(ConcurrentSweeper, DestructionWhilePausedJoins) {
  Allocator heap(test::default_config());
  auto sweeper = std::make_unique<ConcurrentSweeper>(heap, sweeper_config(0));
  sweeper->pause();
  const auto start = Clock::now();
  sweeper.reset();
  EXPECT_LT(Clock::now() - start, kTimeout) << "a paused sweeper's thread did not join";
}

// A mutator allocates while the sweeper sweeps the same directory. It must
// never get the cell of a live object, and every block that was UNSWEPT is
// swept exactly once: by the sweeper, by the mutator's claim, or by
// finish_lazy_sweep.
TEST(ConcurrentSweeper, AMutatorAllocatingBesideTheSweeperSharesTheWorkExactly) {
  Allocator heap(test::default_config());
  ThreadAllocator owner(heap);
  const std::size_t blocks = test::scaled(32, 12);
  const std::vector<void*> old_objects = fill_full_blocks(owner, blocks);
  // A partly used block too (given up SWEPT), so both kinds become UNSWEPT.
  std::vector<void*> partial;
  for (std::size_t i = 0; i < 100; ++i) {
    void* p = owner.allocate(kCellBytes);
    write_object(p, old_objects.size() + i);
    partial.push_back(p);
  }
  owner.flush();

  ConcurrentSweeper sweeper(heap, sweeper_config(2));
  sweeper.pause();
  heap.begin_lazy_sweep(slow_keep_even_ids);
  const std::size_t unswept = blocks_in(heap, BlockState::kUnswept);
  ASSERT_EQ(unswept, blocks + 1);
  const std::uint64_t swept_before = sweeper.stats().blocks_swept;

  std::unordered_set<void*> survivors;
  std::vector<std::pair<void*, std::uint64_t>> survivor_ids;
  for (std::size_t i = 0; i < old_objects.size() + partial.size(); ++i) {
    void* p = i < old_objects.size() ? old_objects[i] : partial[i - old_objects.size()];
    if (i % 2 == 0) {
      survivors.insert(p);
      survivor_ids.emplace_back(p, i);
    }
  }

  // About half the cells the sweep frees: the mutator and the sweeper both
  // find UNSWEPT blocks left to take.
  const std::size_t to_allocate = blocks * cells_per_block(kClass) / 4;
  std::vector<void*> fresh;
  std::size_t hits_on_live = 0;
  std::size_t wrong_class = 0;
  LocalAllocatorCounters mutator_counters;
  std::atomic<bool> started{false};
  std::thread mutator([&] {
    ThreadAllocator thread(heap);
    while (!started.load()) std::this_thread::yield();
    for (std::size_t i = 0; i < to_allocate; ++i) {
      void* p = thread.allocate(kCellBytes);
      if (survivors.count(p) != 0) ++hits_on_live;
      if (MarkedBlock::of(p)->directory() != &directory_of(heap, kClass)) ++wrong_class;
      write_object(p, 1'000'000 + i);
      fresh.push_back(p);
      if (i % 50 == 0) {  // give blocks back: more claims, more races
        thread.flush();
        std::this_thread::yield();
      }
    }
    thread.flush();
    mutator_counters = thread.counters();
  });
  sweeper.resume();
  started.store(true);
  mutator.join();
  sweeper.pause();

  const std::size_t left_for_finish = blocks_in(heap, BlockState::kUnswept);
  heap.finish_lazy_sweep();
  EXPECT_EQ(blocks_in(heap, BlockState::kUnswept), 0u);
  const std::uint64_t by_sweeper = sweeper.stats().blocks_swept - swept_before;
  EXPECT_EQ(by_sweeper + mutator_counters.lazy_sweeps + left_for_finish, unswept)
      << "sweeper " << by_sweeper << " + mutator " << mutator_counters.lazy_sweeps << " + finish "
      << left_for_finish << " != unswept " << unswept;

  EXPECT_EQ(hits_on_live, 0u) << "the mutator was handed a live object's cell";
  EXPECT_EQ(wrong_class, 0u);
  for (const auto& [p, id] : survivor_ids) {
    ASSERT_TRUE(object_intact(p, id)) << "survivor " << id << " was overwritten";
    ASSERT_EQ(heap.find_cell(p), p);
  }
  for (std::size_t i = 0; i < fresh.size(); ++i) {
    ASSERT_TRUE(object_intact(fresh[i], 1'000'000 + i)) << "new object " << i << " was overwritten";
    ASSERT_EQ(heap.find_cell(fresh[i]), fresh[i]);
  }
  EXPECT_EQ(heap.stats().classes[kClass].live_cells, survivors.size() + fresh.size());
  EXPECT_TRUE(test::block_identities_hold(heap));
  sweeper.resume();
  RecordProperty("by_sweeper", static_cast<int>(by_sweeper));
  RecordProperty("by_mutator", static_cast<int>(mutator_counters.lazy_sweeps));
  RecordProperty("by_finish", static_cast<int>(left_for_finish));
}

// Cycle after cycle, with a mutator allocating and dropping objects and
// the sweeper reclaiming beside it, live objects stay intact and the heap
// does not grow without bound.
TEST(ConcurrentSweeper, RepeatedCyclesKeepLiveObjectsAndReuseMemory) {
  Allocator heap(test::default_config());
  ConcurrentSweeper sweeper(heap, sweeper_config(1));
  ThreadAllocator thread(heap);
  const int cycles = static_cast<int>(test::scaled(12, 5));
  const std::size_t per_cycle = 3 * cells_per_block(kClass);
  std::vector<std::pair<void*, std::uint64_t>> live;  // even ids survive every cycle
  std::uint64_t next_id = 0;
  std::size_t peak_in_use = 0;
  for (int c = 0; c < cycles; ++c) {
    for (std::size_t i = 0; i < per_cycle; ++i) {
      void* p = thread.allocate(kCellBytes);
      const std::uint64_t id = next_id++;
      // Keep few: one in 64 objects gets an even id, the others an odd one.
      const std::uint64_t tagged = (id % 64 == 0) ? id * 2 : id * 2 + 1;
      write_object(p, tagged);
      if (tagged % 2 == 0) live.emplace_back(p, tagged);
    }
    thread.flush();
    sweeper.begin_cycle(keep_even_ids);  // pauses, finishes the last cycle, begins this one
    ASSERT_TRUE(wait_until([&] { return blocks_in(heap, BlockState::kUnswept) == 0; }));
    peak_in_use = std::max(peak_in_use, heap.pool().stats().in_use_bytes);
  }
  sweeper.pause();
  heap.finish_lazy_sweep();
  for (const auto& [p, id] : live) ASSERT_TRUE(object_intact(p, id)) << "object " << id;
  EXPECT_EQ(heap.stats().classes[kClass].live_cells, live.size());
  EXPECT_LE(peak_in_use, 8 * kBlockSize) << "memory was not reused across cycles";
  RecordProperty("peak_blocks", static_cast<int>(peak_in_use / kBlockSize));
  sweeper.resume();
}

// Retention by demand: blocks that the last cycle filled and that become
// EMPTY stay in the registry (the allocators will claim as many again
// before the next collection), instead of going through the limbo to the
// pool and coming back as fresh blocks. A cycle in which they stayed
// unused lets them go.
TEST(ConcurrentSweeper, KeepsAsManyEmptyBlocksAsTheLastCycleFilled) {
  Allocator heap(test::default_config());
  ThreadAllocator thread(heap);
  constexpr std::size_t kBlocks = 8;
  constexpr std::size_t kKeep = 2;
  fill_full_blocks(thread, kBlocks);
  SweeperConfig config = sweeper_config(kKeep);
  config.keep_last_cycle = 1;
  ConcurrentSweeper sweeper(heap, config);
  sweeper.begin_cycle(drop_all);
  ASSERT_TRUE(wait_until([&] { return sweeper.stats().blocks_swept == kBlocks; }));
  // Two more passes: the one that follows a pass that swept walks the
  // registry again (S2) with nothing left to sweep.
  const std::uint64_t passes = sweeper.stats().passes;
  ASSERT_TRUE(wait_until([&] { return sweeper.stats().passes >= passes + 2; }));
  EXPECT_EQ(directory_of(heap, kClass).last_cycle_blocks(), kBlocks);
  EXPECT_EQ(sweeper.stats().blocks_retired, 0u) << "retired blocks the last cycle filled";
  EXPECT_EQ(blocks_in(heap, BlockState::kEmpty), kBlocks);

  // A cycle with no allocation: nothing was filled, so only kKeep stay.
  sweeper.begin_cycle(drop_all);
  EXPECT_EQ(directory_of(heap, kClass).last_cycle_blocks(), 0u);
  ASSERT_TRUE(wait_until([&] { return sweeper.stats().blocks_retired == kBlocks - kKeep; }))
      << "retired " << sweeper.stats().blocks_retired;
  sweeper.pause();  // the identity is read in two loads; a free between them would split it
  EXPECT_EQ(blocks_in(heap, BlockState::kEmpty), kKeep);
  EXPECT_TRUE(test::budget_identity_holds(heap));
  sweeper.resume();
}

// One walk per cycle: S1 and S2 read every block header in the registry, a
// cache line that the allocators write when they claim and give back
// blocks. After a begin_cycle the sweeper walks once; the passes that
// follow, and the polls while retired blocks wait for their grace period,
// only reclaim. The next begin_cycle walks again.
TEST(ConcurrentSweeper, WalksTheRegistryOncePerCycle) {
  Allocator heap(test::default_config());
  ThreadAllocator thread(heap);
  constexpr std::size_t kBlocks = 8;
  constexpr std::size_t kKeep = 2;
  fill_full_blocks(thread, kBlocks);
  ConcurrentSweeper sweeper(heap, sweeper_config(kKeep));
  sweeper.begin_cycle(drop_all);
  ASSERT_TRUE(wait_until([&] { return sweeper.stats().blocks_freed == kBlocks - kKeep; }))
      << "freed " << sweeper.stats().blocks_freed;
  const std::uint64_t passes = sweeper.stats().passes;
  ASSERT_TRUE(wait_until([&] { return sweeper.stats().passes >= passes + 3; }));  // polls at 1 ms
  EXPECT_EQ(sweeper.stats().blocks_swept, kBlocks);
  EXPECT_EQ(sweeper.stats().walks, 1u) << "walked the registry again with nothing new to sweep";

  sweeper.begin_cycle(drop_all);
  ASSERT_TRUE(wait_until([&] { return sweeper.stats().walks >= 2; }));
  const std::uint64_t passes_2 = sweeper.stats().passes;
  ASSERT_TRUE(wait_until([&] { return sweeper.stats().passes >= passes_2 + 3; }));
  EXPECT_EQ(sweeper.stats().walks, 2u);
  sweeper.pause();
  heap.finish_lazy_sweep();
}

// CPU share: a sweep that got less than min_cpu_percent of a core (here its
// predicate sleeps, as a sweeper thread waits while other threads hold the
// CPUs) leaves the next cycle's UNSWEPT blocks to the allocators' lazy
// sweeps. The cycle after that sweeps in the background again, and
// measures again.
TEST(ConcurrentSweeper, LeavesCyclesToTheAllocatorsWhenItGetsLessThanItsShareOfACore) {
  Allocator heap(test::default_config());
  ThreadAllocator thread(heap);
  constexpr std::size_t kBlocks = 4;
  SweeperConfig config = sweeper_config(64);  // keeps the EMPTY blocks: each cycle refills the same ones
  config.min_cpu_percent = 50;
  ConcurrentSweeper sweeper(heap, config);
  fill_full_blocks(thread, kBlocks);
  sweeper.begin_cycle(slow_drop_all);  // ~1 ms asleep per block: a few percent of a core
  ASSERT_TRUE(wait_until([&] { return sweeper.stats().blocks_swept == kBlocks; }));
  EXPECT_EQ(sweeper.stats().cycles_left, 0u);

  fill_full_blocks(thread, kBlocks, 1000);
  sweeper.begin_cycle(drop_all);
  ASSERT_TRUE(wait_until([&] { return sweeper.stats().walks >= 2; }));  // S2 still walks
  const std::uint64_t passes = sweeper.stats().passes;
  ASSERT_TRUE(wait_until([&] { return sweeper.stats().passes >= passes + 3; }));
  EXPECT_EQ(sweeper.stats().cycles_left, 1u);
  EXPECT_EQ(sweeper.stats().blocks_swept, kBlocks) << "swept in the cycle after a sweep that waited for a core";
  EXPECT_EQ(blocks_in(heap, BlockState::kUnswept), kBlocks);

  // The cycle right after the left one sweeps in the background whatever
  // its own sweep will measure, so it is the one checked. (A cycle with
  // nothing to sweep in between would be measured too: on a loaded machine
  // its wake-up alone can outlast the 1 ms a sweep must take to be judged,
  // with little CPU, and it would leave the cycle after it.)
  fill_full_blocks(thread, kBlocks, 2000);  // sweeps the left cycle's blocks lazily, or takes fresh ones
  sweeper.begin_cycle(drop_all);
  ASSERT_TRUE(wait_until([&] { return sweeper.stats().blocks_swept == 2 * kBlocks; }))
      << "swept " << sweeper.stats().blocks_swept << ", cycles left " << sweeper.stats().cycles_left
      << ": the cycle after the left one sweeps again";
  EXPECT_EQ(sweeper.stats().cycles_left, 1u);
  sweeper.pause();
  heap.finish_lazy_sweep();
}

// Back-off: with at least as many attached threads as online CPUs, a
// background sweep would take a core from a mutator that sweeps lazily
// anyway, so the sweeper leaves UNSWEPT blocks alone (S1) until a core is
// free again, and then sweeps them.
TEST(ConcurrentSweeper, BacksOffWhileMutatorsFillTheCores) {
  Allocator heap(test::default_config());
  ThreadAllocator thread(heap);
  constexpr std::size_t kBlocks = 4;
  fill_full_blocks(thread, kBlocks);
  const long online = ::sysconf(_SC_NPROCESSORS_ONLN);
  std::vector<std::unique_ptr<ThreadAllocator>> others;
  for (long i = 1; i < online; ++i) others.push_back(std::make_unique<ThreadAllocator>(heap));
  ASSERT_GE(heap.attached_threads(), static_cast<std::size_t>(online));
  SweeperConfig config = sweeper_config(0);
  config.back_off = 1;
  ConcurrentSweeper sweeper(heap, config);
  sweeper.begin_cycle(drop_all);
  ASSERT_TRUE(wait_until([&] { return sweeper.stats().passes_backed_off >= 3; }))
      << "backed off " << sweeper.stats().passes_backed_off << " times";
  EXPECT_EQ(sweeper.stats().blocks_swept, 0u) << "swept while every core has a mutator";
  EXPECT_EQ(blocks_in(heap, BlockState::kUnswept), kBlocks);
  // The cycle's wake did not notify (it would only have deferred S1), and
  // the poll that found the work still walked S2.
  EXPECT_EQ(sweeper.stats().quiet_wakes, 1u);
  EXPECT_GE(sweeper.stats().walks, 1u);

  others.clear();  // detached: one thread on this machine's CPUs leaves a core free
  if (online > 1) {
    ASSERT_TRUE(wait_until([&] { return sweeper.stats().blocks_swept == kBlocks; }))
        << "swept " << sweeper.stats().blocks_swept << " after a core came free";
    EXPECT_EQ(blocks_in(heap, BlockState::kUnswept), 0u);
  }
  sweeper.pause();
  heap.finish_lazy_sweep();
}

}  // namespace
}  // namespace handoff
