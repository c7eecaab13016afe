// Sweeping through the Allocator: eager sweeps with a liveness predicate,
// lazy sweeps finished by the allocators that claim blocks, survivors'
// contents, reuse of freed cells, and the live counts in the stats.
#include "test_support.h"

#include <handoff/allocator.h>
#include <handoff/block_pool.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <set>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

namespace handoff {
namespace {

struct Object {
  void* cell;
  std::size_t size;
};

std::vector<Object> allocate_mixed(ThreadAllocator& thread, std::size_t count) {
  std::vector<Object> objects;
  for (std::size_t i = 0; i < count; ++i) {
    const std::size_t size = 16 + (i * 53) % 700;
    void* p = thread.allocate(size);
    test::stamp(p, size, reinterpret_cast<std::uintptr_t>(p));
    objects.push_back({p, size});
  }
  return objects;
}

std::size_t live_cells_in_stats(const Allocator& heap) {
  std::size_t n = 0;
  for (const DirectoryStats& d : heap.stats().classes) n += d.live_cells;
  return n;
}

TEST(Sweep, EagerSweepKeepsEveryOtherObjectIntactAndReusesTheRest) {
  Allocator heap(test::default_config());
  ThreadAllocator thread(heap);
  std::vector<Object> objects = allocate_mixed(thread, test::scaled(6000, 2000));
  thread.flush();
  EXPECT_EQ(live_cells_in_stats(heap), objects.size());

  std::unordered_set<void*> keep;
  std::set<void*> freed;
  for (std::size_t i = 0; i < objects.size(); ++i) {
    if (i % 2 == 0) {
      keep.insert(objects[i].cell);
    } else {
      freed.insert(objects[i].cell);
    }
  }
  std::size_t calls = 0;
  auto is_live = [&](void* cell) { ++calls; return keep.count(cell) != 0; };
  const SweepTotals t = heap.sweep(is_live);
  EXPECT_EQ(calls, objects.size()) << "the predicate sees each allocated cell once";
  EXPECT_EQ(t.live_cells, keep.size());
  EXPECT_EQ(t.freed_cells, freed.size());
  EXPECT_EQ(live_cells_in_stats(heap), keep.size());
  EXPECT_TRUE(test::block_identities_hold(heap));
  for (const Object& o : objects) {
    if (keep.count(o.cell) != 0) {
      ASSERT_TRUE(test::stamp_intact(o.cell, o.size, reinterpret_cast<std::uintptr_t>(o.cell)));
      ASSERT_TRUE(heap.is_live_cell(o.cell));
    } else {
      ASSERT_FALSE(heap.is_live_cell(o.cell));
    }
  }

  // Allocating the same sizes again reuses freed cells and never a survivor.
  // Cells never allocated at all (the free tails of the blocks, which a
  // thread's re-claimed last block offers first) may serve some requests;
  // every request lands on one or the other, inside the existing blocks.
  std::size_t capacity = 0;
  for (std::size_t cls = 0; cls < kNumSizeClasses; ++cls) capacity += directory_of(heap, cls).stats().capacity_cells;
  const std::size_t never_allocated = capacity - objects.size();
  const PoolStats pool_before = heap.pool().stats();
  std::size_t reused = 0;
  std::size_t untouched = 0;
  std::size_t requests = 0;
  for (std::size_t i = 1; i < objects.size(); i += 2) {
    void* p = thread.allocate(objects[i].size);
    ++requests;
    ASSERT_EQ(keep.count(p), 0u) << "a live cell was handed out again";
    if (freed.count(p) != 0) {
      ++reused;
    } else {
      ++untouched;
    }
    test::stamp(p, objects[i].size, 7);
  }
  EXPECT_EQ(reused + untouched, requests);
  EXPECT_LE(untouched, never_allocated) << "requests beyond the never-allocated cells must reuse freed ones";
  EXPECT_GE(reused, requests - std::min(requests, never_allocated));
  EXPECT_EQ(heap.pool().stats().blocks_acquired, pool_before.blocks_acquired) << "no fresh block was needed";
  for (const Object& o : objects) {
    if (keep.count(o.cell) != 0) {
      ASSERT_TRUE(test::stamp_intact(o.cell, o.size, reinterpret_cast<std::uintptr_t>(o.cell)));
    }
  }
}

TEST(Sweep, SweepSkipsBlocksAThreadOwns) {
  Allocator heap(test::default_config());
  ThreadAllocator thread(heap);
  void* owned = thread.allocate(32);
  std::size_t calls = 0;
  auto none = [&](void*) { ++calls; return false; };
  const SweepTotals t = heap.sweep(none);
  EXPECT_EQ(calls, 0u);
  EXPECT_EQ(t.freed_cells, 0u);
  EXPECT_EQ(MarkedBlock::of(owned)->state().state, BlockState::kOwned);
  thread.flush();
  EXPECT_EQ(heap.sweep(none).freed_cells, 1u);
}

TEST(Sweep, LazySweepIsFinishedByClaimingAllocatorsAndByFinish) {
  Allocator heap(test::default_config());
  ThreadAllocator thread(heap);
  std::vector<Object> objects = allocate_mixed(thread, test::scaled(6000, 2000));
  thread.flush();
  const LocalAllocatorCounters before = thread.counters();
  std::unordered_set<void*> keep;
  for (std::size_t i = 0; i < objects.size(); i += 2) keep.insert(objects[i].cell);
  std::size_t calls = 0;
  auto is_live = [&](void* cell) { ++calls; return keep.count(cell) != 0; };
  heap.begin_lazy_sweep(is_live);
  std::size_t unswept = 0;
  for (const DirectoryStats& d : heap.stats().classes) unswept += d.blocks_in_state[static_cast<std::size_t>(BlockState::kUnswept)];
  EXPECT_GT(unswept, 0u);
  EXPECT_EQ(calls, 0u) << "nothing is swept at begin";

  // Allocating claims UNSWEPT blocks and sweeps them first.
  std::vector<void*> fresh;
  for (std::size_t i = 1; i < objects.size(); i += 8) {
    void* p = thread.allocate(objects[i].size);
    ASSERT_EQ(keep.count(p), 0u) << "a survivor was handed out";
    fresh.push_back(p);
  }
  thread.flush();
  const LocalAllocatorCounters after = thread.counters();
  EXPECT_GT(after.lazy_sweeps, before.lazy_sweeps);
  EXPECT_GT(after.lazily_freed, before.lazily_freed);
  EXPECT_EQ(heap.stats().counters.lazy_sweeps, after.lazy_sweeps) << "flush publishes the counters";
  EXPECT_GT(calls, 0u);

  const SweepTotals t = heap.finish_lazy_sweep();
  EXPECT_EQ(calls, objects.size()) << "every old cell was judged exactly once, lazily or at finish";
  for (const DirectoryStats& d : heap.stats().classes) {
    EXPECT_EQ(d.blocks_in_state[static_cast<std::size_t>(BlockState::kUnswept)], 0u);
  }
  EXPECT_EQ(t.freed_cells + after.lazily_freed - before.lazily_freed, objects.size() - keep.size());
  EXPECT_EQ(live_cells_in_stats(heap), keep.size() + fresh.size());
  for (const Object& o : objects) {
    if (keep.count(o.cell) != 0) {
      ASSERT_TRUE(test::stamp_intact(o.cell, o.size, reinterpret_cast<std::uintptr_t>(o.cell)));
      ASSERT_TRUE(heap.is_live_cell(o.cell));
    }
  }
  for (void* p : fresh) EXPECT_TRUE(heap.is_live_cell(p)) << "cells allocated during the lazy sweep are kept";
}

// A predicate describes liveness when the sweep began (mark bits of that
// cycle). Small cells allocated after begin_lazy_sweep are never shown to it;
// large objects allocated in that window must not be either, or a newborn
// object is freed while still in use.
TEST(Sweep, LazySweepKeepsLargeObjectsAllocatedAfterBegin) {
  Allocator heap(test::default_config());
  ThreadAllocator thread(heap);
  void* old_large = thread.allocate(kMaxSmallSize + 100);
  void* old_small = thread.allocate(64);
  thread.flush();
  std::unordered_set<void*> marked{old_large, old_small};
  auto is_marked = [&](void* cell) { return marked.count(cell) != 0; };
  heap.begin_lazy_sweep(is_marked);
  void* new_small = thread.allocate(64);
  void* new_large = thread.allocate(kMaxSmallSize + 100);
  test::stamp(new_large, kMaxSmallSize + 100, 5);
  thread.flush();
  heap.finish_lazy_sweep();
  EXPECT_TRUE(heap.is_live_cell(old_large));
  EXPECT_TRUE(heap.is_live_cell(old_small));
  EXPECT_TRUE(heap.is_live_cell(new_small)) << "small cells allocated during the lazy sweep survive";
  EXPECT_TRUE(heap.is_live_cell(new_large))
      << "a large object allocated after begin_lazy_sweep was freed by finish_lazy_sweep";
}

TEST(Sweep, PredicatesMayBeTemporariesOrCaptureless) {
  Allocator heap(test::default_config());
  ThreadAllocator thread(heap);
  void* a = thread.allocate(32);
  void* b = thread.allocate(32);
  thread.flush();
  std::size_t calls = 0;
  const SweepTotals t = heap.sweep([&](void* cell) { ++calls; return cell == a; });  // a temporary
  EXPECT_EQ(calls, 2u);
  EXPECT_EQ(t.freed_cells, 1u);
  EXPECT_TRUE(heap.is_live_cell(a));
  EXPECT_FALSE(heap.is_live_cell(b));
  heap.begin_lazy_sweep([](void*) { return false; });  // captureless: stored by type
  void* c = thread.allocate(32);
  EXPECT_EQ(c, a) << "the claimer swept a's block with the captureless predicate and reused a's cell";
  EXPECT_EQ(thread.counters().lazily_freed, 1u);
  thread.flush();
  heap.finish_lazy_sweep();
  EXPECT_TRUE(heap.is_live_cell(c));
}

TEST(Sweep, SecondBeginBeforeFinishIsMisuseAndChangesNothing) {
  Allocator heap(test::default_config());
  ThreadAllocator thread(heap);
  void* a = thread.allocate(32);
  thread.flush();
  auto keep_all = [](void*) { return true; };
  auto keep_none = [](void*) { return false; };
  heap.begin_lazy_sweep(keep_all);
  try {
    heap.begin_lazy_sweep(keep_none);
    FAIL() << "expected kMisuse";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kMisuse);
    EXPECT_NE(std::string(e.what()).find("finish_lazy_sweep"), std::string::npos) << e.what();
  }
  const SweepTotals t = heap.finish_lazy_sweep();
  EXPECT_EQ(t.live_cells, 1u) << "the first predicate still applies";
  EXPECT_TRUE(heap.is_live_cell(a));
  heap.begin_lazy_sweep(keep_none);  // a new cycle may begin after finish
  EXPECT_EQ(heap.finish_lazy_sweep().freed_cells, 1u);
  EXPECT_FALSE(heap.is_live_cell(a));
}

TEST(Sweep, TotalsCountBytesAndLargeObjects) {
  Allocator heap(test::default_config());
  ThreadAllocator thread(heap);
  for (int i = 0; i < 10; ++i) thread.allocate(100);
  for (int i = 0; i < 3; ++i) thread.allocate(kMaxSmallSize * 2);
  thread.flush();
  auto none = [](void*) { return false; };
  const SweepTotals t = heap.sweep(none);
  EXPECT_EQ(t.freed_cells, 10u);
  EXPECT_EQ(t.freed_bytes, 10 * class_size(size_class_of(100)));
  EXPECT_EQ(t.freed_large, 3u);
  EXPECT_EQ(t.live_cells + t.live_large, 0u);
  EXPECT_EQ(heap.stats().large.objects, 0u);
  EXPECT_TRUE(test::budget_identity_holds(heap));
}

// begin_lazy_sweep with its walk in parts run by several threads at once
// (as the collector runs them on its marker threads): every part runs once,
// a directory larger than one part is split, and the blocks made UNSWEPT
// are exactly the FULL and SWEPT ones, as with the sequential begin.
TEST(Sweep, LazySweepBegunInPartsOnSeveralThreadsMarksEveryFullOrSweptBlockOnce) {
  Allocator heap(test::default_config());
  ThreadAllocator thread(heap);
  const std::size_t small = (Allocator::kLazySweepPartSlots * 2 + 10) * cells_per_block(size_class_of(32));  // 3 parts
  std::vector<void*> cells;
  for (std::size_t i = 0; i < small; ++i) cells.push_back(thread.allocate(32));
  for (std::size_t i = 0; i < 100; ++i) cells.push_back(thread.allocate(16 + (i * 53) % 700));
  thread.flush();
  auto in_state = [&](BlockState state) {
    std::size_t n = 0;
    for (const DirectoryStats& d : heap.stats().classes) n += d.blocks_in_state[static_cast<std::size_t>(state)];
    return n;
  };
  const std::size_t sweepable = in_state(BlockState::kFull) + in_state(BlockState::kSwept);
  ASSERT_GT(sweepable, Allocator::kLazySweepPartSlots * 2);

  std::size_t calls = 0;
  std::size_t parts = 0;
  std::vector<std::atomic<int>> ran;
  auto keep_all = [&](void*) { ++calls; return true; };  // outlives the cycle: finish calls it
  heap.begin_lazy_sweep(keep_all,
                        [&](std::size_t tasks, const std::function<void(std::size_t)>& run) {
                          parts = tasks;
                          ran = std::vector<std::atomic<int>>(tasks);
                          std::atomic<std::size_t> next{0};
                          std::vector<std::thread> workers;
                          for (int t = 0; t < 3; ++t) {
                            workers.emplace_back([&] {
                              for (std::size_t i; (i = next.fetch_add(1)) < tasks;) {
                                ran[i].fetch_add(1);
                                run(i);
                              }
                            });
                          }
                          for (auto& w : workers) w.join();
                        });
  EXPECT_GE(parts, 4u) << "the 32-byte directory in three parts, and one per other directory in use";
  for (std::size_t i = 0; i < parts; ++i) EXPECT_EQ(ran[i].load(), 1) << "part " << i;
  EXPECT_EQ(in_state(BlockState::kUnswept), sweepable);
  EXPECT_EQ(in_state(BlockState::kFull) + in_state(BlockState::kSwept), 0u);
  EXPECT_EQ(calls, 0u) << "nothing is swept at begin";
  heap.finish_lazy_sweep();
  EXPECT_EQ(calls, cells.size()) << "every cell judged once, by finish";
  for (void* p : cells) ASSERT_TRUE(heap.is_live_cell(p));
}

}  // namespace
}  // namespace handoff
