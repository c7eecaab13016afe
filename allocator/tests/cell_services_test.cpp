// The cell services a layer above asks of the allocator (cell_services.h):
// the owner's cells are found before they are recorded, given up on request,
// and nothing else is touched; chunk membership; the destructible mark.
#include "test_support.h"

#include <handoff/cell_services.h>
#include <handoff/epoch.h>

#include <gtest/gtest.h>

#include <thread>

namespace handoff {
namespace {

using test::default_config;

TEST(CellServices, TheOwnersUnrecordedCellIsFoundForALookupAndRecordedOnGiveUp) {
  Allocator heap(default_config());
  ThreadAllocator thread(heap);
  void* cell = thread.allocate(48);
  EXPECT_EQ(heap.find_cell(cell), nullptr) << "live bits lag the owner's current block until give-up";
  {
    ScopedPin pinned(heap.epochs());
    EXPECT_EQ(find_cell_for_lookup(heap, static_cast<char*>(cell) + 20), cell)
        << "a lookup accepts a cell of a block another thread owns";
  }
  give_up_block_holding(heap, thread, cell);
  EXPECT_EQ(heap.find_cell(cell), cell) << "give-up records the cell in the live bits";
  void* next = thread.allocate(48);  // re-claims the block it gave up
  EXPECT_EQ(MarkedBlock::of(next), MarkedBlock::of(cell));
  thread.flush();
}

TEST(CellServices, GiveUpActsOnlyOnTheCallersOwnBlock) {
  Allocator heap(default_config());
  ThreadAllocator owner(heap);
  void* cell = owner.allocate(64);
  std::thread([&] {
    ThreadAllocator other(heap);
    give_up_block_holding(heap, other, cell);  // not other's block: no effect
    int local = 0;
    give_up_block_holding(heap, other, &local);  // not in the heap: no effect
    other.flush();
  }).join();
  EXPECT_EQ(heap.find_cell(cell), nullptr) << "another thread's give-up left the owner's block alone";
  owner.flush();
  EXPECT_EQ(heap.find_cell(cell), cell);
}

TEST(CellServices, InBlockChunksTellsSmallCellsFromLargeObjectsAndOutsiders) {
  Allocator heap(default_config());
  ThreadAllocator thread(heap);
  void* small = thread.allocate(32);
  void* large = thread.allocate(kMaxSmallSize + 1);
  int local = 0;
  EXPECT_TRUE(in_block_chunks(heap, small));
  EXPECT_FALSE(in_block_chunks(heap, large));
  EXPECT_FALSE(in_block_chunks(heap, &local));
  EXPECT_FALSE(in_block_chunks(heap, nullptr));
  thread.flush();
}

TEST(CellServices, NoteDestructibleMarksTheSmallCellsBlock) {
  Allocator heap(default_config());
  ThreadAllocator thread(heap);
  void* cell = thread.allocate(80);
  EXPECT_FALSE(MarkedBlock::of(cell)->has_destructible());
  note_destructible_cell(cell, 80);
  EXPECT_TRUE(MarkedBlock::of(cell)->has_destructible());
  void* large = thread.allocate(kMaxSmallSize + 1);
  note_destructible_cell(large, kMaxSmallSize + 1);  // large objects: nothing to note, nothing touched
  thread.flush();
}

}  // namespace
}  // namespace handoff
