// Local allocators: the owned block and its free list, the accounting
// equation, give-up recording cells in the live bitmap, refill order
// (claim before fresh), lazy sweeping on claim, and out-of-memory.
#include "test_support.h"

#include <handoff/allocator.h>

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

namespace handoff {
namespace {

constexpr std::size_t kClass = 2;  // 48-byte cells

TEST(LocalAllocator, AccountingBalancesAfterEveryAllocation) {
  Allocator heap(test::default_config());
  ThreadAllocator thread(heap);
  LocalAllocator& local = thread.local_allocator(kClass);
  EXPECT_EQ(local.current_block(), nullptr);
  EXPECT_EQ(local.directory(), &heap.directory(kClass));
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
  EXPECT_EQ(heap.directory(kClass).stats().blocks_in_state[static_cast<std::size_t>(BlockState::kFull)], 1u);
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
  const DirectoryStats s = heap.directory(0).stats();
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
