// The mark services a marking layer above asks of the allocator
// (mark_services.h): marks are set and read per version, conservative
// lookups find allocated cells only, the walk over marked cells stops when
// asked, and the verifier's heap walk names a mark on a free cell.
#include "test_support.h"

#include <handoff/mark_services.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

namespace handoff {
namespace {

using test::default_config;

// One allocated 48-byte cell, recorded in its block's live bits.
struct OneCell {
  Allocator heap{default_config()};
  ThreadAllocator thread{heap};
  void* cell = thread.allocate(48);
  OneCell() { thread.flush(); }
  ~OneCell() { thread.flush(); }
  // A cell of the same block that was never allocated.
  void* free_cell() const {
    const MarkedBlock* block = MarkedBlock::of(cell);
    for (std::size_t i = 0; i < block->cell_count(); ++i) {
      if (!block->is_live_cell(block->cell_at(i))) return block->cell_at(i);
    }
    return nullptr;
  }
};

TEST(MarkServices, NextMarkVersionSkipsNeverMarkedAndTheClearingClaim) {
  EXPECT_EQ(next_mark_version(0), 1u);
  EXPECT_EQ(next_mark_version(1), 2u);
  EXPECT_EQ(next_mark_version(MarkedBlock::kMarkVersionClearing - 1), 1u) << "the clearing claim is no version";
  EXPECT_EQ(next_mark_version(MarkedBlock::kMarkVersionClearing), 1u) << "0 means never marked";
}

TEST(MarkServices, AMarkIsSetOnceAndReadOnlyForItsVersion) {
  OneCell h;
  void* other = h.thread.allocate(48);
  h.thread.flush();
  EXPECT_TRUE(mark_small_cell(h.cell, 3));
  EXPECT_FALSE(mark_small_cell(h.cell, 3)) << "already marked";
  EXPECT_TRUE(is_marked_small_cell(h.cell, 3));
  EXPECT_FALSE(is_marked_small_cell(other, 3));
  EXPECT_FALSE(is_marked_small_cell(h.cell, 4)) << "a mark of another collection reads as unmarked";
  EXPECT_TRUE(mark_small_cell<AccessMode::kShared>(other, 3));
  EXPECT_TRUE(is_marked_small_cell(other, 3));
  clear_small_cell_mark(h.cell);
  EXPECT_FALSE(is_marked_small_cell(h.cell, 3));
  EXPECT_EQ(small_cell_size(h.cell), class_size(size_class_of(48)));
}

TEST(MarkServices, AConservativeLookupFindsAllocatedCellsOnly) {
  OneCell h;
  EXPECT_EQ(allocated_cell_holding(static_cast<char*>(h.cell) + 20), h.cell) << "an interior pointer";
  void* free = h.free_cell();
  ASSERT_NE(free, nullptr);
  EXPECT_EQ(allocated_cell_holding(free), nullptr) << "a free cell keeps nothing alive (invariant 7)";
  EXPECT_EQ(allocated_cell_holding(MarkedBlock::of(h.cell)), nullptr) << "the block header";
}

TEST(MarkServices, TheWalkOverMarkedCellsVisitsThisVersionsMarksAndStopsWhenAsked) {
  OneCell h;
  void* second = h.thread.allocate(48);
  void* unmarked = h.thread.allocate(48);
  h.thread.flush();
  mark_small_cell(h.cell, 5);
  mark_small_cell(second, 5);
  std::vector<void*> seen;
  for_each_marked_small_cell(h.heap, 5, [&](void* cell) {
    seen.push_back(cell);
    return true;
  });
  EXPECT_EQ(seen.size(), 2u);
  for (void* cell : seen) EXPECT_NE(cell, unmarked);
  seen.clear();
  for_each_marked_small_cell(h.heap, 6, [&](void* cell) {
    seen.push_back(cell);
    return true;
  });
  EXPECT_TRUE(seen.empty()) << "no cell carries version 6";
  for_each_marked_small_cell(h.heap, 5, [&](void* cell) {
    seen.push_back(cell);
    return false;
  });
  EXPECT_EQ(seen.size(), 1u) << "false stops the walk";
}

TEST(MarkServices, TheStoppedWorldAuditNamesAMarkOnAFreeCell) {
  OneCell h;
  mark_small_cell(h.cell, 7);
  BlockAudit audit = audit_blocks_after_mark(h.heap, 7);
  EXPECT_TRUE(audit.problem.empty()) << audit.problem;
  void* free = h.free_cell();
  ASSERT_NE(free, nullptr);
  mark_small_cell(free, 7);
  audit = audit_blocks_after_mark(h.heap, 7);
  EXPECT_EQ(audit.problem, "a free cell is marked");
  EXPECT_EQ(audit.block, MarkedBlock::of(h.cell));
  EXPECT_TRUE(audit_blocks_after_mark(h.heap, 8).problem.empty()) << "marks of another version are stale, not wrong";
}

TEST(MarkServices, TheAuditRefusesABlockThatAThreadOwns) {
  Allocator heap(default_config());
  ThreadAllocator thread(heap);
  void* cell = thread.allocate(48);  // its block stays OWNED: no flush
  const BlockAudit audit = audit_blocks_after_mark(heap, 1);
  EXPECT_NE(audit.problem.find("while the world is stopped"), std::string::npos) << audit.problem;
  EXPECT_EQ(audit.block, MarkedBlock::of(cell));
  thread.flush();
}

}  // namespace
}  // namespace handoff
