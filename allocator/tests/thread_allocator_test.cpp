// Thread allocators: routing by size, owner ids, flush and detach, counters,
// and several threads allocating from shared directories at once.
#include "test_support.h"

#include <handoff/allocator.h>
#include <handoff/block_pool.h>
#include <handoff/large_object_space.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <vector>

namespace handoff {
namespace {

TEST(ThreadAllocator, SmallSizesGoToTheirClassAndLargeOnesToTheLargeObjectSpace) {
  Allocator heap(test::default_config());
  ThreadAllocator thread(heap);
  for (std::size_t size : {std::size_t{1}, std::size_t{16}, std::size_t{17}, std::size_t{80}, std::size_t{81},
                           std::size_t{1000}, kMaxSmallSize}) {
    void* p = thread.allocate(size);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % 16, 0u);
    MarkedBlock* block = MarkedBlock::of(p);
    EXPECT_EQ(block, thread.local_allocator(size_class_of(size)).current_block()) << "size " << size;
    EXPECT_EQ(block->cell_size(), class_size(size_class_of(size)));
  }
  void* large = thread.allocate(kMaxSmallSize + 1);
  EXPECT_EQ(heap.pool().chunk_of(large), nullptr);
  EXPECT_EQ(heap.large_objects().find(large), large);
  void* p = thread.try_allocate(48);
  EXPECT_NE(p, nullptr);
  EXPECT_EQ(MarkedBlock::of(p)->cell_size(), 48u);
}

TEST(ThreadAllocator, OwnerIdsAreDistinctAndAttachmentIsCounted) {
  Allocator heap(test::default_config());
  {
    ThreadAllocator a(heap);
    ThreadAllocator b(heap);
    EXPECT_NE(a.owner_id(), b.owner_id());
    EXPECT_NE(a.owner_id(), 0u);
    EXPECT_EQ(&a.allocator(), &heap);
    EXPECT_EQ(heap.stats().attached_threads, 2u);
  }
  EXPECT_EQ(heap.stats().attached_threads, 0u);
}

TEST(ThreadAllocator, DestructionHandsEveryBlockBack) {
  Allocator heap(test::default_config());
  std::vector<void*> cells;
  {
    ThreadAllocator thread(heap);
    for (std::size_t cls = 0; cls < kNumSizeClasses; ++cls) cells.push_back(thread.allocate(class_size(cls)));
  }
  for (std::size_t cls = 0; cls < kNumSizeClasses; ++cls) {
    EXPECT_EQ(heap.stats().classes[cls].blocks_in_state[static_cast<std::size_t>(BlockState::kOwned)], 0u);
  }
  for (void* c : cells) EXPECT_TRUE(heap.is_live_cell(c)) << "the detached thread's cells are recorded";
  const AllocatorStats s = heap.stats();
  EXPECT_EQ(s.counters.fresh_blocks, kNumSizeClasses) << "counters published at detach";
  EXPECT_EQ(s.counters.refills, kNumSizeClasses);
}

TEST(ThreadAllocator, FlushPublishesCounterDeltasOnce) {
  Allocator heap(test::default_config());
  ThreadAllocator thread(heap);
  for (std::size_t i = 0; i < cells_per_block(0) + 1; ++i) thread.allocate(16);
  EXPECT_EQ(heap.stats().counters.refills, 0u) << "not published before a flush";
  thread.flush();
  EXPECT_EQ(heap.stats().counters.refills, 2u);
  EXPECT_EQ(heap.stats().counters.fresh_blocks, 2u);
  EXPECT_EQ(heap.stats().counters.cells_from_claims, 2 * cells_per_block(0));
  thread.flush();
  EXPECT_EQ(heap.stats().counters.refills, 2u) << "a second flush adds nothing";
  EXPECT_EQ(thread.counters().refills, 2u);
}

// Several threads allocate cells of mixed sizes, stamp each with their own
// pattern, and flush now and then so their blocks move between threads
// (a sweeper that keeps everything restarts their claim cursors). Every
// time a thread starts on another block it checks that the block's state
// word names it as the owner. At the end every cell must hold its writer's
// pattern and no two cells may overlap: no cell was handed out twice.
TEST(ThreadAllocatorConcurrency, CellsAreNeverHandedOutTwice) {
  Allocator heap(test::default_config());
  const unsigned threads = test::thread_count();
  const std::size_t per_thread = test::scaled(30000, 12000);
  struct Cell {
    char* p;
    std::size_t size;
    std::uint64_t tag;
  };
  std::vector<std::vector<Cell>> cells(threads);
  std::atomic<std::size_t> ownership_errors{0};
  std::atomic<unsigned> running{threads};
  std::atomic<bool> go{false};  // opened by the sweeper's first sweep
  std::vector<std::thread> workers;
  for (unsigned t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      ThreadAllocator local(heap);
      std::mt19937_64 rng(t + 1);
      std::vector<MarkedBlock*> current(kNumSizeClasses, nullptr);
      while (!go.load()) std::this_thread::yield();
      for (std::size_t i = 0; i < per_thread; ++i) {
        const std::size_t size = 1 + rng() % (rng() % 8 == 0 ? 2048 : 128);
        auto* p = static_cast<char*>(local.allocate(size));
        const std::size_t cls = size_class_of(size);
        MarkedBlock* block = local.local_allocator(cls).current_block();
        if (block != current[cls]) {
          const BlockStateWord w = block->state();
          if (w.state != BlockState::kOwned || w.owner != local.owner_id()) ownership_errors.fetch_add(1);
          current[cls] = block;
        }
        if (MarkedBlock::of(p) != block) ownership_errors.fetch_add(1);
        const std::uint64_t tag = (std::uint64_t{t} << 40) | i;
        test::stamp(p, class_size(cls), tag);
        cells[t].push_back({p, class_size(cls), tag});
        if (i % 1024 == 1023) {
          local.flush();
          std::fill(current.begin(), current.end(), nullptr);
        }
      }
      running.fetch_sub(1);
    });
  }
  std::thread sweeper([&] {
    auto keep_all = [](void*) { return true; };
    while (running.load() != 0) {
      heap.sweep(keep_all);
      go.store(true);
      std::this_thread::yield();
    }
  });
  for (auto& w : workers) w.join();
  sweeper.join();
  EXPECT_EQ(ownership_errors.load(), 0u);

  std::vector<Cell> all;
  for (const auto& v : cells) all.insert(all.end(), v.begin(), v.end());
  std::size_t corrupted = 0;
  for (const Cell& c : all) {
    if (!test::stamp_intact(c.p, c.size, c.tag)) ++corrupted;
    if (heap.find_cell(c.p) != c.p) ++corrupted;
  }
  EXPECT_EQ(corrupted, 0u) << "cells overwritten by another thread or not recorded";
  std::sort(all.begin(), all.end(), [](const Cell& a, const Cell& b) { return a.p < b.p; });
  for (std::size_t i = 1; i < all.size(); ++i) {
    ASSERT_LE(all[i - 1].p + all[i - 1].size, all[i].p) << "cells overlap: handed out twice";
  }
  std::size_t live = 0;
  for (const DirectoryStats& d : heap.stats().classes) live += d.live_cells;
  EXPECT_EQ(live, all.size());
  EXPECT_TRUE(test::block_identities_hold(heap));
  EXPECT_TRUE(test::pool_identities_hold(heap.pool().stats()));
}

// Threads allocate, keep a bounded set of survivors and drop the rest by
// flipping a state word in the cell; a sweeper frees dropped cells while the
// threads keep allocating, so freed cells are reused by other threads. A
// survivor must never change.
TEST(ThreadAllocatorConcurrency, SurvivorsStayIntactWhileOthersAreSweptAndReused) {
  struct Header {
    std::atomic<std::uint64_t> state;  // kAlive or kDead
    std::uint64_t tag;
  };
  static constexpr std::uint64_t kAlive = 0xA11CE;
  static constexpr std::uint64_t kDead = 0xDEAD;
  Allocator heap(test::default_config());
  const unsigned threads = test::thread_count();
  const std::size_t per_thread = test::scaled(150000, 50000);
  const std::size_t keep = test::scaled(2000, 400);
  constexpr std::size_t kMinSweeps = 20;
  std::atomic<std::size_t> sweeps{0};
  std::atomic<std::size_t> corrupted{0};
  std::atomic<unsigned> running{threads};
  std::mutex survivors_mutex;
  std::vector<Header*> survivors;
  auto intact = [](Header* h, std::size_t bytes) {
    return h->state.load(std::memory_order_relaxed) == kAlive &&
           test::stamp_intact(h + 1, bytes - sizeof(Header), h->tag);
  };
  auto size_of = [](std::uint64_t tag) { return std::size_t{16} << (tag % 6); };  // 16..512
  std::vector<std::thread> workers;
  for (unsigned t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      ThreadAllocator local(heap);
      std::mt19937_64 rng(100 + t);
      std::vector<Header*> mine;
      // Keep going until the sweeper has run a few times beside us.
      for (std::size_t i = 0; i < per_thread || sweeps.load() < kMinSweeps; ++i) {
        const std::uint64_t tag = (std::uint64_t{t} << 32) | i;
        const std::size_t size = size_of(tag);
        auto* h = new (local.allocate(size)) Header{{kAlive}, tag};
        test::stamp(h + 1, size - sizeof(Header), tag);
        if (mine.size() < keep) {
          mine.push_back(h);
        } else {
          Header*& victim = mine[rng() % keep];
          if (!intact(victim, size_of(victim->tag))) corrupted.fetch_add(1);
          victim->state.store(kDead, std::memory_order_release);
          victim = h;
        }
        if (i % 2048 == 2047) local.flush();
      }
      for (Header* h : mine) {
        if (!intact(h, size_of(h->tag))) corrupted.fetch_add(1);
      }
      std::lock_guard lock(survivors_mutex);
      survivors.insert(survivors.end(), mine.begin(), mine.end());
      running.fetch_sub(1);
    });
  }
  auto is_alive = [](void* cell) {
    return static_cast<Header*>(cell)->state.load(std::memory_order_acquire) != kDead;
  };
  std::size_t freed = 0;
  while (running.load() != 0) {
    freed += heap.sweep(is_alive).freed_cells;
    sweeps.fetch_add(1);
    std::this_thread::yield();
  }
  for (auto& w : workers) w.join();
  EXPECT_EQ(corrupted.load(), 0u) << "a live cell was swept or handed out again";
  EXPECT_GE(sweeps.load(), kMinSweeps);
  const SweepTotals last = heap.sweep(is_alive);
  EXPECT_EQ(last.live_cells, survivors.size()) << "exactly the survivors remain after a final sweep";
  for (Header* h : survivors) EXPECT_TRUE(intact(h, size_of(h->tag)));
  EXPECT_GT(freed + last.freed_cells, 0u);
  EXPECT_TRUE(test::block_identities_hold(heap));
}

}  // namespace
}  // namespace handoff
