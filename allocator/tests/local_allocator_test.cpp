// Local allocators: the owned block and its free list, the accounting
// equation, give-up recording cells in the live bitmap, refill order
// (claim before fresh), lazy sweeping on claim, and out-of-memory.
#include "test_support.h"

#include <handoff/allocator.h>
#include <handoff/block_pool.h>

#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace handoff {
namespace {

constexpr std::size_t kClass = 2;  // 48-byte cells

TEST(LocalAllocator, AccountingBalancesAfterEveryAllocation) {
  Allocator heap(test::default_config());
  ThreadAllocator thread(heap);
  LocalAllocator& local = thread.local_allocator(kClass);
  EXPECT_EQ(local.current_block(), nullptr);
  EXPECT_EQ(local.directory(), &directory_of(heap, kClass));
  const std::size_t per_block = cells_per_block(kClass);
  MarkedBlock* previous = nullptr;
  std::size_t allocated_in_block = 0;
  std::set<void*> cells;
  for (std::size_t i = 0; i < 3 * per_block + 5; ++i) {
    void* p = local.allocate();
    ASSERT_NE(p, nullptr);
    ASSERT_TRUE(cells.insert(p).second) << "cell handed out twice";
    MarkedBlock* block = local.current_block();
    ASSERT_EQ(MarkedBlock::of(p), block);
    if (block != previous) {
      if (previous != nullptr) {
        EXPECT_EQ(previous->state().state, BlockState::kFull) << "an exhausted block is given up full";
        EXPECT_EQ(previous->live_cell_count(), per_block);
      }
      const BlockStateWord w = block->state();
      EXPECT_EQ(w.state, BlockState::kOwned);
      EXPECT_EQ(w.owner, thread.owner_id());
      previous = block;
      allocated_in_block = 0;
    }
    ++allocated_in_block;
    const LocalAllocator::Accounting a = local.accounting();
    ASSERT_TRUE(a.balanced()) << "live_at_claim " << a.live_at_claim << " + allocated " << a.allocated
                              << " + on_free_list " << a.on_free_list << " != capacity " << a.capacity;
    ASSERT_EQ(a.capacity, per_block);
    ASSERT_EQ(a.allocated, allocated_in_block);
    ASSERT_EQ(a.live_at_claim, 0u);
    local.check_invariants();
  }
  EXPECT_EQ(local.counters().fresh_blocks, 4u);
  EXPECT_EQ(local.counters().refills, 4u);
}

TEST(LocalAllocator, GiveUpRecordsExactlyTheHandedOutCells) {
  Allocator heap(test::default_config());
  ThreadAllocator thread(heap);
  LocalAllocator& local = thread.local_allocator(kClass);
  std::vector<void*> cells;
  for (int i = 0; i < 100; ++i) cells.push_back(local.allocate());
  MarkedBlock* block = local.current_block();
  ASSERT_NE(block, nullptr);
  EXPECT_EQ(heap.find_cell(cells[0]), nullptr) << "not recorded while the block is owned";
  local.stop_allocating();
  EXPECT_EQ(local.current_block(), nullptr);
  EXPECT_TRUE(local.accounting().balanced());
  EXPECT_EQ(block->state().state, BlockState::kSwept) << "given up with free cells";
  EXPECT_EQ(block->live_cell_count(), 100u);
  EXPECT_EQ(block->live_cell_count() + block->free_cell_count(), block->cell_count());
  for (void* c : cells) EXPECT_TRUE(block->is_live_cell(c));
  EXPECT_FALSE(block->is_live_cell(block->cell_at(100)));
  block->check_invariants();
  local.stop_allocating();  // idempotent
  EXPECT_EQ(block->state().state, BlockState::kSwept);
}

TEST(LocalAllocator, FullBlockIsGivenUpFull) {
  Allocator heap(test::default_config());
  ThreadAllocator thread(heap);
  LocalAllocator& local = thread.local_allocator(kClass);
  for (std::size_t i = 0; i < cells_per_block(kClass); ++i) local.allocate();
  MarkedBlock* block = local.current_block();
  ASSERT_NE(block, nullptr);
  EXPECT_EQ(local.accounting().on_free_list, 0u);
  local.stop_allocating();
  EXPECT_EQ(block->state().state, BlockState::kFull);
  EXPECT_EQ(block->free_cell_count(), 0u);
}

TEST(LocalAllocator, ClaimOfAPartlyLiveBlockHandsOutOnlyItsFreeCells) {
  Allocator heap(test::default_config());
  ThreadAllocator thread(heap);
  LocalAllocator& local = thread.local_allocator(kClass);
  std::vector<void*> cells;
  for (int i = 0; i < 60; ++i) cells.push_back(local.allocate());
  MarkedBlock* block = local.current_block();
  thread.flush();
  std::set<void*> dead;
  for (std::size_t i = 0; i < cells.size(); i += 2) dead.insert(cells[i]);
  auto is_live = [&](void* c) { return dead.count(c) == 0; };
  heap.sweep(is_live);
  ASSERT_EQ(block->live_cell_count(), 30u);
  ASSERT_EQ(block->state().state, BlockState::kSwept);

  // The next allocations reuse the freed cells first, in address order.
  void* p = local.allocate();
  ASSERT_EQ(local.current_block(), block) << "the swept block is claimed before a fresh one";
  EXPECT_EQ(local.counters().claims, 1u);
  LocalAllocator::Accounting a = local.accounting();
  EXPECT_EQ(a.live_at_claim, 30u);
  EXPECT_TRUE(a.balanced());
  std::vector<void*> reused{p};
  for (int i = 1; i < 30; ++i) reused.push_back(local.allocate());
  std::vector<void*> expected(dead.begin(), dead.end());
  EXPECT_EQ(reused, expected);
  for (int i = 0; i < 5; ++i) {
    void* q = local.allocate();
    EXPECT_EQ(q, block->cell_at(60 + static_cast<std::size_t>(i))) << "then the untouched tail";
    a = local.accounting();
    EXPECT_TRUE(a.balanced());
    EXPECT_EQ(a.allocated, 31u + static_cast<std::size_t>(i));
  }
}

TEST(LocalAllocator, LazilySweptBlockWithoutFreeCellsIsSkipped) {
  Allocator heap(test::default_config());
  ThreadAllocator thread(heap);
  LocalAllocator& local = thread.local_allocator(kClass);
  for (std::size_t i = 0; i < cells_per_block(kClass); ++i) local.allocate();
  MarkedBlock* full = local.current_block();
  thread.flush();
  ASSERT_EQ(full->state().state, BlockState::kFull);
  auto keep_all = [](void*) { return true; };
  heap.begin_lazy_sweep(keep_all);
  ASSERT_EQ(full->state().state, BlockState::kUnswept);
  void* p = local.allocate();
  EXPECT_NE(MarkedBlock::of(p), full);
  EXPECT_EQ(local.counters().lazy_sweeps, 1u);
  EXPECT_EQ(local.counters().lazily_freed, 0u);
  EXPECT_EQ(local.counters().fresh_blocks, 2u);
  EXPECT_EQ(full->state().state, BlockState::kFull) << "given back full after the lazy sweep";
  EXPECT_EQ(full->live_cell_count(), full->cell_count());
  EXPECT_TRUE(local.accounting().balanced());
  heap.finish_lazy_sweep();
}

TEST(LocalAllocator, OutOfMemoryThrowsOrReturnsNullAndLeavesNoBlockOwned) {
  Allocator heap(test::config_with_limit(kBlockSize));
  ThreadAllocator thread(heap);
  LocalAllocator& local = thread.local_allocator(kClass);
  for (std::size_t i = 0; i < cells_per_block(kClass); ++i) ASSERT_NE(local.allocate(), nullptr);
  try {
    local.allocate();
    FAIL() << "expected kOutOfMemory";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kOutOfMemory);
    const std::string what = e.what();
    EXPECT_NE(what.find("size class " + std::to_string(kClass)), std::string::npos) << what;
    EXPECT_NE(what.find("HANDOFF_MAX_HEAP_BYTES"), std::string::npos) << what;
  }
  EXPECT_EQ(local.current_block(), nullptr);
  EXPECT_EQ(local.try_allocate(), nullptr);
  EXPECT_EQ(directory_of(heap, kClass).stats().blocks_in_state[static_cast<std::size_t>(BlockState::kFull)], 1u);
  EXPECT_TRUE(test::budget_identity_holds(heap));
}

// A thread that allocates a little and flushes, over and over (a mutator
// reaching safepoints), must keep reusing the block it gave up instead of
// taking a fresh block every other time.
TEST(LocalAllocator, FlushThenAllocateKeepsReusingThePartlyUsedBlock) {
  Allocator heap(test::default_config());
  ThreadAllocator thread(heap);
  for (int i = 0; i < 100; ++i) {
    ASSERT_NE(thread.allocate(16), nullptr);
    thread.flush();
  }
  const DirectoryStats s = directory_of(heap, 0).stats();
  EXPECT_EQ(s.live_cells, 100u);
  EXPECT_EQ(s.blocks, 1u) << "100 16-byte cells fit one block, but " << s.blocks
                          << " blocks were taken: refill skips blocks its cursor has passed";
}

// The same pattern under a heap limit must not report out-of-memory while
// the directory holds a claimable block that is almost entirely free.
TEST(LocalAllocator, NoOutOfMemoryWhileAClaimableBlockHasFreeCells) {
  Allocator heap(test::config_with_limit(2 * kBlockSize));
  ThreadAllocator thread(heap);
  for (int i = 0; i < 20; ++i) {
    void* p = thread.try_allocate(16);
    ASSERT_NE(p, nullptr) << "allocation " << i << " failed with " << heap.stats().classes[0].live_cells
                          << " live cells of capacity " << heap.stats().classes[0].capacity_cells;
    thread.flush();
  }
}

}  // namespace
}  // namespace handoff

namespace handoff {
namespace {

// ---- R1-R3: re-claiming the block given up at the last flush -------------

constexpr std::size_t kCellBytes = 48;  // class kClass

std::uint64_t published_reclaims(Allocator& heap) { return heap.stats().counters.last_block_reclaims; }

// Allocates `n` cells of kCellBytes, flushes, and returns the block they are in.
// Allocates `count` stamped cells of `bytes` on a thread of its own (which
// flushes and exits), as another mutator would; returns them.
std::vector<void*> allocate_on_another_thread(Allocator& heap, std::size_t bytes, int count, std::uint64_t tag) {
  std::vector<void*> cells;
  std::thread other([&] {
    ThreadAllocator t2(heap);
    for (int i = 0; i < count; ++i) {
      void* q = t2.allocate(bytes);
      test::stamp(q, bytes, tag + static_cast<std::uint64_t>(i));
      cells.push_back(q);
    }
    t2.flush();
  });
  other.join();
  return cells;
}

MarkedBlock* block_with_cells(ThreadAllocator& thread, std::size_t n, std::vector<void*>* cells = nullptr) {
  MarkedBlock* block = nullptr;
  for (std::size_t i = 0; i < n; ++i) {
    void* p = thread.allocate(kCellBytes);
    if (block == nullptr) block = MarkedBlock::of(p);
    EXPECT_EQ(MarkedBlock::of(p), block);
    if (cells != nullptr) cells->push_back(p);
  }
  thread.flush();
  return block;
}

TEST(LastBlockReclaim, TheNextAllocationAfterAFlushReclaimsTheSameBlock) {
  Allocator heap(test::default_config());
  ThreadAllocator thread(heap);
  LocalAllocator& local = thread.local_allocator(kClass);
  MarkedBlock* block = block_with_cells(thread, 10);
  const BlockStateWord given_up = block->state();
  EXPECT_EQ(given_up.state, BlockState::kSwept);
  const std::uint64_t published = published_reclaims(heap);
  EXPECT_EQ(local.counters().last_block_reclaims, 0u);

  void* p = thread.allocate(kCellBytes);
  EXPECT_EQ(MarkedBlock::of(p), block);
  EXPECT_EQ(p, block->cell_at(10)) << "continues right after the cells handed out before the flush";
  EXPECT_EQ(block->state(), given_up.with(BlockState::kOwned, thread.owner_id())) << "same generation";
  EXPECT_EQ(local.counters().last_block_reclaims, 1u);
  EXPECT_EQ(local.counters().fresh_blocks, 1u);
  EXPECT_EQ(local.counters().claims, 1u);
  EXPECT_TRUE(local.accounting().balanced());
  EXPECT_EQ(local.accounting().live_at_claim, 10u);
  thread.flush();
  EXPECT_EQ(published_reclaims(heap), published + 1) << "published at the next flush";
}

TEST(LastBlockReclaim, RepeatedFlushesKeepReclaimingWithoutScanning) {
  Allocator heap(test::default_config());
  ThreadAllocator thread(heap);
  MarkedBlock* block = block_with_cells(thread, 1);
  for (int i = 0; i < 50; ++i) {
    void* p = thread.allocate(kCellBytes);
    ASSERT_EQ(MarkedBlock::of(p), block);
    thread.flush();
  }
  const LocalAllocatorCounters c = thread.local_allocator(kClass).counters();
  EXPECT_EQ(c.last_block_reclaims, 50u);
  EXPECT_EQ(c.fresh_blocks, 1u);
  EXPECT_EQ(c.cas_failures, 0u);
  EXPECT_EQ(published_reclaims(heap), 50u);
  EXPECT_EQ(block->live_cell_count(), 51u);
}

TEST(LastBlockReclaim, AFullBlockIsNotRememberedButClaimedFromTheDirectory) {
  Allocator heap(test::default_config());
  ThreadAllocator thread(heap);
  std::vector<void*> cells;
  MarkedBlock* block = block_with_cells(thread, cells_per_block(kClass), &cells);
  ASSERT_EQ(block->state().state, BlockState::kFull);
  auto free_first = [&](void* c) { return c != cells[0]; };
  heap.sweep(free_first);
  ASSERT_EQ(block->state().state, BlockState::kSwept);
  void* p = thread.allocate(kCellBytes);
  EXPECT_EQ(p, cells[0]);
  const LocalAllocatorCounters c = thread.local_allocator(kClass).counters();
  EXPECT_EQ(c.last_block_reclaims, 0u) << "a full block has nothing to come back for";
  EXPECT_EQ(c.claims, 1u);
}

TEST(LastBlockReclaim, ARememberedBlockSweptEmptyIsReclaimedFromTheStart) {
  Allocator heap(test::default_config());
  ThreadAllocator thread(heap);
  MarkedBlock* block = block_with_cells(thread, 10);
  auto keep_none = [](void*) { return false; };
  heap.sweep(keep_none);
  ASSERT_EQ(block->state().state, BlockState::kEmpty);
  void* p = thread.allocate(kCellBytes);
  EXPECT_EQ(p, block->cell_at(0));
  EXPECT_EQ(thread.local_allocator(kClass).counters().last_block_reclaims, 1u);
}

TEST(LastBlockReclaim, ARememberedBlockMarkedUnsweptIsClaimedThroughTheDirectoryAndSwept) {
  Allocator heap(test::default_config());
  ThreadAllocator thread(heap);
  std::vector<void*> cells;
  MarkedBlock* block = block_with_cells(thread, 10, &cells);
  auto keep_none = [](void*) { return false; };
  heap.begin_lazy_sweep(keep_none);
  ASSERT_EQ(block->state().state, BlockState::kUnswept);
  void* p = thread.allocate(kCellBytes);
  EXPECT_EQ(MarkedBlock::of(p), block);
  EXPECT_EQ(p, block->cell_at(0)) << "the claimer swept it before allocating";
  const LocalAllocatorCounters c = thread.local_allocator(kClass).counters();
  EXPECT_EQ(c.last_block_reclaims, 0u) << "R3 accepts only SWEPT or EMPTY; an UNSWEPT block must be swept";
  EXPECT_EQ(c.lazy_sweeps, 1u);
  EXPECT_EQ(c.lazily_freed, 10u);
  heap.finish_lazy_sweep();
}

TEST(LastBlockReclaim, ARememberedBlockRetiredAndPooledIsNotReclaimed) {
  Allocator heap(test::default_config());
  ThreadAllocator thread(heap);
  MarkedBlock* block = block_with_cells(thread, 10);
  const std::uint32_t generation = block->state().generation;
  auto keep_none = [](void*) { return false; };
  heap.sweep(keep_none);
  ASSERT_EQ(heap.release_empty_blocks(), 1u);
  ASSERT_FALSE(heap.pool().is_handed_out(block));
  // The pool caches it (poisoned under ASan); only the exempt accessor reads it.
  const BlockStateWord pooled = MarkedBlock::state_possibly_freed(block);
  EXPECT_EQ(pooled.generation, generation);
  EXPECT_EQ(pooled.state, BlockState::kRetired) << "a cached block keeps its last header";

  void* p = thread.allocate(kCellBytes);
  ASSERT_NE(p, nullptr);
  MarkedBlock* now = MarkedBlock::of(p);
  EXPECT_EQ(now->directory(), &directory_of(heap, kClass));
  EXPECT_EQ(now->cell_size(), class_size(kClass));
  if (now == block) {
    EXPECT_EQ(now->state().generation, generation + 1) << "came back through the pool, not re-claimed";
  }
  const LocalAllocatorCounters c = thread.local_allocator(kClass).counters();
  EXPECT_EQ(c.last_block_reclaims, 0u);
  EXPECT_EQ(c.fresh_blocks, 2u);
}

TEST(LastBlockReclaim, APurgedBlockReadsAsPooledGenerationZero) {
  Allocator heap(test::default_config());
  ThreadAllocator thread(heap);
  MarkedBlock* block = block_with_cells(thread, 10);
  const BlockStateWord stale = block->state();
  auto keep_none = [](void*) { return false; };
  heap.sweep(keep_none);
  ASSERT_EQ(heap.release_empty_blocks(), 1u);
  ASSERT_GE(heap.purge(true), 1u);
  EXPECT_EQ(heap.pool().stats().purged_bytes, kBlockSize);
  // Exempt from ASan by design: the block is poisoned and its pages purged.
  const BlockStateWord purged = MarkedBlock::state_possibly_freed(block);
  EXPECT_EQ(purged.state, BlockState::kPooled);
  EXPECT_EQ(purged.generation, 0u);
  EXPECT_EQ(purged.owner, 0u);
  EXPECT_FALSE(MarkedBlock::try_transition_possibly_freed(block, stale.with(BlockState::kEmpty),
                                                          stale.with(BlockState::kOwned, thread.owner_id())))
      << "a stale claim of a purged block fails";
  EXPECT_EQ(MarkedBlock::state_possibly_freed(block), BlockStateWord{});

  void* p = thread.allocate(kCellBytes);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(MarkedBlock::of(p)->directory(), &directory_of(heap, kClass));
  EXPECT_EQ(thread.local_allocator(kClass).counters().last_block_reclaims, 0u);
}

// The remembered block is retired, freed and handed to another thread for
// another size class. The stale claim must fail on the generation, leave the
// other thread's block alone, and the allocation must land in a block of the
// right class.
TEST(LastBlockReclaim, ABlockRecycledIntoAnotherClassIsNotReclaimed) {
  Allocator heap(test::default_config());
  ThreadAllocator thread(heap);
  MarkedBlock* block = block_with_cells(thread, 10);
  const std::uint32_t generation = block->state().generation;
  auto keep_none = [](void*) { return false; };
  heap.sweep(keep_none);
  ASSERT_EQ(heap.release_empty_blocks(), 1u);

  constexpr std::size_t kOtherBytes = 256;
  const std::size_t other_class = size_class_of(kOtherBytes);
  ASSERT_NE(other_class, kClass);
  const std::vector<void*> other_cells = allocate_on_another_thread(heap, kOtherBytes, 6, 1000);
  ASSERT_EQ(MarkedBlock::of(other_cells[0]), block) << "the pool hands the freed block out again (LIFO)";
  const BlockStateWord recycled = block->state();
  ASSERT_EQ(recycled.generation, generation + 1);
  ASSERT_EQ(recycled.state, BlockState::kSwept);
  ASSERT_EQ(block->directory(), &directory_of(heap, other_class));

  for (int i = 0; i < 20; ++i) {
    void* p = thread.allocate(kCellBytes);
    ASSERT_NE(p, nullptr);
    MarkedBlock* b = MarkedBlock::of(p);
    EXPECT_NE(b, block);
    EXPECT_EQ(b->directory(), &directory_of(heap, kClass));
    EXPECT_EQ(b->size_class(), kClass);
    EXPECT_GE(b->cell_size(), kCellBytes);
    test::stamp(p, kCellBytes, 1);
  }
  EXPECT_EQ(thread.local_allocator(kClass).counters().last_block_reclaims, 0u);
  EXPECT_EQ(block->state(), recycled) << "the stale claim changed the other class's block";
  EXPECT_EQ(block->live_cell_count(), 6u);
  for (std::size_t i = 0; i < other_cells.size(); ++i) {
    EXPECT_TRUE(test::stamp_intact(other_cells[i], kOtherBytes, 1000 + i));
  }
}

// Same, but the block comes back into the *same* class: the directory may
// legitimately hand it to us again, but only through a claim, never through
// the stale remembered generation, and never over the other thread's cells.
TEST(LastBlockReclaim, ABlockRecycledIntoTheSameClassIsClaimedOnlyThroughTheDirectory) {
  Allocator heap(test::default_config());
  ThreadAllocator thread(heap);
  MarkedBlock* block = block_with_cells(thread, 10);
  const std::uint32_t generation = block->state().generation;
  auto keep_none = [](void*) { return false; };
  heap.sweep(keep_none);
  ASSERT_EQ(heap.release_empty_blocks(), 1u);

  const std::vector<void*> other_cells = allocate_on_another_thread(heap, kCellBytes, 5, 2000);
  ASSERT_EQ(MarkedBlock::of(other_cells[0]), block);
  ASSERT_EQ(block->state().generation, generation + 1);
  ASSERT_EQ(block->state().state, BlockState::kSwept);

  const std::set<void*> theirs(other_cells.begin(), other_cells.end());
  for (int i = 0; i < 20; ++i) {
    void* p = thread.allocate(kCellBytes);
    EXPECT_EQ(theirs.count(p), 0u) << "handed out a cell another thread allocated";
    EXPECT_EQ(MarkedBlock::of(p)->directory(), &directory_of(heap, kClass));
    test::stamp(p, kCellBytes, 3);
  }
  EXPECT_EQ(thread.local_allocator(kClass).counters().last_block_reclaims, 0u);
  for (std::size_t i = 0; i < other_cells.size(); ++i) {
    EXPECT_TRUE(test::stamp_intact(other_cells[i], kCellBytes, 2000 + i));
  }
}

// Mutators allocate a little and flush (so they keep a remembered block)
// while another thread sweeps everything a mutator dropped and releases empty
// blocks, and a third allocates another class that recycles those blocks.
// Every cell a mutator gets must be in a block of its class, and the other
// class's live cells must stay intact.
TEST(LastBlockReclaim, StaleClaimsFailWhileBlocksAreRecycledConcurrently) {
  Allocator heap(test::default_config());
  constexpr std::size_t kOtherBytes = 64;
  const std::size_t other_class = size_class_of(kOtherBytes);
  ASSERT_NE(other_class, kClass);
  std::atomic<bool> stop{false};
  std::atomic<std::size_t> wrong_class{0};
  std::atomic<std::uint64_t> reclaims{0};
  const std::size_t rounds = test::scaled(3000, 600);

  auto mutator = [&] {
    ThreadAllocator thread(heap);
    for (std::size_t r = 0; r < rounds; ++r) {
      for (int k = 0; k < 3; ++k) {
        void* p = thread.allocate(kCellBytes);
        MarkedBlock* b = MarkedBlock::of(p);
        if (b->directory() != &directory_of(heap, kClass) || b->cell_size() != class_size(kClass)) {
          wrong_class.fetch_add(1);
        }
        test::stamp(p, kCellBytes, r);
      }
      thread.flush();
    }
    reclaims.fetch_add(thread.counters().last_block_reclaims);
  };
  // Lives in the other class: kept by the predicate (its cells never die).
  std::vector<void*> kept;
  std::thread recycler([&] {
    ThreadAllocator thread(heap);
    std::size_t n = 0;
    while (!stop.load() && n < test::scaled(4000, 1000)) {
      void* q = thread.allocate(kOtherBytes);
      test::stamp(q, kOtherBytes, 0x5000 + n);
      kept.push_back(q);
      ++n;
      if (n % 16 == 0) {
        thread.flush();
        std::this_thread::yield();
      }
    }
    thread.flush();
  });
  std::thread reaper([&] {
    const std::size_t keep_class = size_class_of(kOtherBytes);
    auto only_other_class = [keep_class](void* cell) { return MarkedBlock::of(cell)->size_class() == keep_class; };
    while (!stop.load()) {
      heap.sweep(only_other_class);
      heap.release_empty_blocks();
      std::this_thread::yield();
    }
  });
  std::vector<std::thread> mutators;
  for (unsigned t = 0; t + 2 < test::thread_count() || t == 0; ++t) mutators.emplace_back(mutator);
  for (auto& t : mutators) t.join();
  stop.store(true);
  reaper.join();
  recycler.join();

  EXPECT_EQ(wrong_class.load(), 0u);
  EXPECT_GT(reclaims.load(), 0u) << "no refill was served by the remembered block";
  for (std::size_t i = 0; i < kept.size(); ++i) {
    ASSERT_TRUE(test::stamp_intact(kept[i], kOtherBytes, 0x5000 + i)) << "cell " << i << " was overwritten";
    ASSERT_EQ(heap.find_cell(kept[i]), kept[i]);
  }
  EXPECT_TRUE(test::block_identities_hold(heap));
  EXPECT_TRUE(test::budget_identity_holds(heap));
}

}  // namespace
}  // namespace handoff
