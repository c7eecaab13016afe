// Free lists: bump mode on an empty block, linked intervals over the free
// cells of a partly live block, and the hand-off to the slow path.
#include <handoff/block_pool.h>
#include <handoff/free_list.h>
#include <handoff/marked_block.h>

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#if defined(HANDOFF_ASAN)
#include <sanitizer/asan_interface.h>
#endif

namespace handoff {
namespace {

char kSlowSentinel;

class FreeListTest : public ::testing::Test {
 protected:
  FreeListTest() : budget_(0), pool_(AllocatorConfig{}, budget_) {}
  ~FreeListTest() override {
    for (void* b : acquired_) pool_.release(b);
  }

  MarkedBlock* fresh_block(std::size_t cls) {
    const BlockPool::Acquired a = pool_.acquire();
    EXPECT_NE(a.memory, nullptr);
    if (a.memory == nullptr) return nullptr;
    acquired_.push_back(a.memory);
    return MarkedBlock::format(a.memory, nullptr, cls, {a.generation, 1, BlockState::kOwned});
  }

  // Allocates until the slow path runs; checks the list's own accounting on
  // the way and writes every byte of every cell it hands out.
  std::vector<char*> drain(FreeList& list, std::size_t expected, std::size_t* slow_calls) {
    std::vector<char*> cells;
    *slow_calls = 0;
    auto slow = [&]() -> void* { ++*slow_calls; return &kSlowSentinel; };
    for (;;) {
      const std::size_t before = list.remaining_cells();
      void* p = list.allocate(slow);
      if (p == &kSlowSentinel) {
        EXPECT_EQ(before, 0u) << "slow path taken with cells left on the list";
        break;
      }
      EXPECT_EQ(list.remaining_cells(), before - 1) << "after cell " << cells.size();
      std::memset(p, 0xA5, list.cell_size());
      cells.push_back(static_cast<char*>(p));
      if (cells.size() > expected) {
        ADD_FAILURE() << "the list handed out more cells than it holds";
        break;
      }
    }
    return cells;
  }

  HeapBudget budget_;
  BlockPool pool_;
  std::vector<void*> acquired_;
};

TEST_F(FreeListTest, EmptyBlockBuildsOneBumpIntervalInAddressOrder) {
  for (std::size_t cls = 0; cls < kNumSizeClasses; ++cls) {
    SCOPED_TRACE("class " + std::to_string(cls));
    MarkedBlock* block = fresh_block(cls);
    ASSERT_NE(block, nullptr);
    FreeList list;
    EXPECT_TRUE(list.empty());
    EXPECT_EQ(list.build(*block), block->cell_count());
    EXPECT_TRUE(list.in_bump_mode());
    EXPECT_FALSE(list.empty());
    EXPECT_EQ(list.cell_size(), block->cell_size());
    EXPECT_EQ(list.remaining_cells(), block->cell_count());
    std::size_t slow_calls = 0;
    const std::vector<char*> cells = drain(list, block->cell_count(), &slow_calls);
    ASSERT_EQ(cells.size(), block->cell_count());
    for (std::size_t i = 0; i < cells.size(); ++i) ASSERT_EQ(cells[i], block->cell_at(i)) << "cell " << i;
    EXPECT_EQ(slow_calls, 1u);
    EXPECT_TRUE(list.empty());
  }
}

TEST_F(FreeListTest, EveryThirdCellLiveBuildsLinkedIntervalsOfExactlyTheFreeCells) {
  for (std::size_t cls = 0; cls < kNumSizeClasses; ++cls) {
    SCOPED_TRACE("class " + std::to_string(cls));
    MarkedBlock* block = fresh_block(cls);
    ASSERT_NE(block, nullptr);
    std::vector<char*> expected;
    for (std::size_t i = 0; i < block->cell_count(); ++i) {
      if (i % 3 == 0) {
        block->live_bits().set(MarkedBlock::atom_of(block->cell_at(i)));
      } else {
        expected.push_back(block->cell_at(i));
      }
    }
    FreeList list;
    EXPECT_EQ(list.build(*block), expected.size());
    EXPECT_EQ(list.remaining_cells(), expected.size());
    if (block->cell_count() >= 5) {  // live 0, free 1-2, live 3, free 4: two runs
      EXPECT_FALSE(list.in_bump_mode()) << "several intervals are linked";
    }
    // for_each_remaining_cell sees the same cells, in address order.
    std::vector<char*> listed;
    list.for_each_remaining_cell([&](void* c) { listed.push_back(static_cast<char*>(c)); });
    EXPECT_EQ(listed, expected);
    std::size_t slow_calls = 0;
    const std::vector<char*> cells = drain(list, expected.size(), &slow_calls);
    EXPECT_EQ(cells, expected) << "exactly the free cells, in address order";
    for (char* c : cells) {
      EXPECT_FALSE(block->live_bits().get(MarkedBlock::atom_of(c))) << "a live cell was handed out";
    }
    EXPECT_EQ(slow_calls, 1u);
  }
}

TEST_F(FreeListTest, AllocationMovesFromOneIntervalToTheNext) {
  MarkedBlock* block = fresh_block(5);
  ASSERT_NE(block, nullptr);
  // Live cells 3, 4 and 10: free intervals [0,3), [5,10), [11,count).
  for (std::size_t i : {3u, 4u, 10u}) block->live_bits().set(MarkedBlock::atom_of(block->cell_at(i)));
  FreeList list;
  ASSERT_EQ(list.build(*block), block->cell_count() - 3);
  auto never = []() -> void* { return &kSlowSentinel; };
  for (std::size_t i = 0; i < 3; ++i) EXPECT_EQ(list.allocate(never), block->cell_at(i));
  EXPECT_EQ(list.remaining_cells(), block->cell_count() - 6);
  EXPECT_EQ(list.allocate(never), block->cell_at(5)) << "the second interval starts after the live run";
  for (std::size_t i = 6; i < 10; ++i) EXPECT_EQ(list.allocate(never), block->cell_at(i));
  EXPECT_EQ(list.allocate(never), block->cell_at(11));
  EXPECT_TRUE(list.in_bump_mode()) << "the last interval is the bump interval";
}

TEST_F(FreeListTest, SingleCellIntervals) {
  MarkedBlock* block = fresh_block(0);
  ASSERT_NE(block, nullptr);
  std::vector<char*> expected;
  for (std::size_t i = 0; i < block->cell_count(); ++i) {
    if (i % 2 == 0 || i + 1 == block->cell_count()) {
      expected.push_back(block->cell_at(i));
    } else {
      block->live_bits().set(MarkedBlock::atom_of(block->cell_at(i)));
    }
  }
  FreeList list;
  ASSERT_EQ(list.build(*block), expected.size());
  std::size_t slow_calls = 0;
  EXPECT_EQ(drain(list, expected.size(), &slow_calls), expected);
  EXPECT_EQ(slow_calls, 1u);
}

TEST_F(FreeListTest, FullBlockBuildsAnEmptyListThatGoesStraightToTheSlowPath) {
  MarkedBlock* block = fresh_block(7);
  ASSERT_NE(block, nullptr);
  block->set_all_live();
  FreeList list;
  EXPECT_EQ(list.build(*block), 0u);
  EXPECT_TRUE(list.empty());
  EXPECT_EQ(list.remaining_cells(), 0u);
  int slow_calls = 0;
  EXPECT_EQ(list.allocate([&]() -> void* { ++slow_calls; return nullptr; }), nullptr);
  EXPECT_EQ(slow_calls, 1);
}

TEST_F(FreeListTest, OnlyTheLastCellFree) {
  MarkedBlock* block = fresh_block(12);
  ASSERT_NE(block, nullptr);
  block->set_all_live();
  char* last = block->cell_at(block->cell_count() - 1);
  block->live_bits().clear(MarkedBlock::atom_of(last));
  FreeList list;
  ASSERT_EQ(list.build(*block), 1u);
  EXPECT_EQ(list.allocate([]() -> void* { return &kSlowSentinel; }), last);
  EXPECT_EQ(list.allocate([]() -> void* { return &kSlowSentinel; }), &kSlowSentinel);
}

TEST_F(FreeListTest, RandomLivePatternsInEveryClass) {
  std::mt19937_64 rng(42);
  for (std::size_t cls = 0; cls < kNumSizeClasses; ++cls) {
    for (int round = 0; round < 4; ++round) {
      SCOPED_TRACE("class " + std::to_string(cls) + " round " + std::to_string(round));
      MarkedBlock* block = fresh_block(cls);
      ASSERT_NE(block, nullptr);
      std::vector<char*> expected;
      for (std::size_t i = 0; i < block->cell_count(); ++i) {
        if (rng() % 4 == 0) {
          block->live_bits().set(MarkedBlock::atom_of(block->cell_at(i)));
        } else {
          expected.push_back(block->cell_at(i));
        }
      }
      FreeList list;
      const std::size_t built = list.build(*block);
      EXPECT_EQ(built, block->cell_count() - block->live_cell_count());
      std::size_t slow_calls = 0;
      EXPECT_EQ(drain(list, expected.size(), &slow_calls), expected);
    }
  }
}

TEST_F(FreeListTest, ClearEmptiesTheList) {
  MarkedBlock* block = fresh_block(1);
  ASSERT_NE(block, nullptr);
  FreeList list;
  list.build(*block);
  list.clear();
  EXPECT_TRUE(list.empty());
  EXPECT_EQ(list.remaining_cells(), 0u);
  EXPECT_EQ(list.allocate([]() -> void* { return &kSlowSentinel; }), &kSlowSentinel);
}

#if defined(HANDOFF_ASAN)
TEST_F(FreeListTest, FreeCellsArePoisonedUntilHandedOut) {
  MarkedBlock* block = fresh_block(3);  // 64-byte cells
  ASSERT_NE(block, nullptr);
  FreeList list;
  list.build(*block);
  char* second = block->cell_at(1);
  EXPECT_TRUE(__asan_address_is_poisoned(second + 32)) << "a free cell must be poisoned";
  void* first = list.allocate([]() -> void* { return nullptr; });
  EXPECT_EQ(__asan_region_is_poisoned(first, 64), nullptr) << "a handed-out cell must be addressable";
  EXPECT_TRUE(__asan_address_is_poisoned(second + 32));
}
#endif

}  // namespace
}  // namespace handoff
