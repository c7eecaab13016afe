// Directories: claims by CAS on the state word, which states a claim and a
// sweep accept, lazy sweeping on claim, releasing empty blocks, stale claims
// after recycling, and concurrent claimers that must never share a block.
#include "reclaim_support.h"
#include "test_support.h"

#include <handoff/block_pool.h>
#include <handoff/directory.h>

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace handoff {
namespace {

constexpr std::uint32_t kMe = 7;
constexpr std::uint32_t kOther = 9;

class DirectoryTest : public ::testing::Test {
 protected:
  DirectoryTest()
      : budget_(0), pool_(AllocatorConfig{}, budget_), directory_(3, pool_, epochs_), me_(epochs_.register_thread()) {}
  ~DirectoryTest() override {
    epochs_.unregister_thread(me_);
    limbo_.release_all(pool_);
  }

  // Retires every EMPTY block and frees it (nobody else is pinned here):
  // returns the number retired.
  std::size_t release_empty() {
    const std::size_t retired = directory_.retire_empty_blocks(0, limbo_, SIZE_MAX);
    for (int i = 0; i < 3; ++i) limbo_.reclaim(epochs_, pool_);
    EXPECT_EQ(limbo_.size(), 0u) << "no pinned thread: two advances end every grace period";
    return retired;
  }

  // A fresh block given up in `state`, with its first `live` cells allocated.
  MarkedBlock* block_in(BlockState state, std::size_t live = 0) {
    MarkedBlock* block = directory_.take_fresh_block(kOther);
    EXPECT_NE(block, nullptr);
    if (block == nullptr) return nullptr;
    for (std::size_t i = 0; i < live; ++i) block->live_bits().set(MarkedBlock::atom_of(block->cell_at(i)));
    block->publish(block->state().with(state, state == BlockState::kOwned ? kOther : 0));
    return block;
  }

  HeapBudget budget_;
  BlockPool pool_;
  EpochDomain epochs_;
  Limbo limbo_;
  Directory directory_;  // destroyed before the pool: it hands its blocks back
  EpochParticipant* me_;
};

TEST_F(DirectoryTest, FreshBlockIsOwnedFormattedAndRegistered) {
  MarkedBlock* block = directory_.take_fresh_block(kMe);
  ASSERT_NE(block, nullptr);
  const BlockStateWord w = block->state();
  EXPECT_EQ(w.state, BlockState::kOwned);
  EXPECT_EQ(w.owner, kMe);
  EXPECT_NE(w.generation, 0u);
  EXPECT_EQ(block->directory(), &directory_);
  EXPECT_EQ(block->size_class(), 3u);
  EXPECT_EQ(block->cell_size(), directory_.cell_size());
  EXPECT_EQ(block->live_cell_count(), 0u);
  EXPECT_EQ(directory_.block_slots(), 1u);
  EXPECT_EQ(directory_.block_at(0), block);
  EXPECT_EQ(block->registry_index(), 0u);
  EXPECT_TRUE(pool_.is_handed_out(block->cell_at(0)));
}

TEST_F(DirectoryTest, ClaimAcceptsOnlySweptEmptyAndUnswept) {
  for (BlockState s : {BlockState::kOwned, BlockState::kFull, BlockState::kSweeping, BlockState::kRetired,
                       BlockState::kPooled}) {
    block_in(s, s == BlockState::kFull ? cells_per_block(3) : 1);
  }
  ClaimCursor cursor;
  ClaimResult r = directory_.try_claim(cursor, kMe, *me_);
  EXPECT_EQ(r.block, nullptr) << "no claimable block yet";
  EXPECT_EQ(r.cas_failures, 0u);

  MarkedBlock* swept = block_in(BlockState::kSwept, 5);
  MarkedBlock* empty = block_in(BlockState::kEmpty, 0);
  const BlockStateWord swept_before = swept->state();
  cursor = {};
  r = directory_.try_claim(cursor, kMe, *me_);
  ASSERT_EQ(r.block, swept);
  EXPECT_FALSE(r.lazily_swept);
  EXPECT_EQ(swept->state(), swept_before.with(BlockState::kOwned, kMe)) << "same generation, owned by me";
  r = directory_.try_claim(cursor, kMe, *me_);
  ASSERT_EQ(r.block, empty);
  EXPECT_EQ(empty->state().state, BlockState::kOwned);
  r = directory_.try_claim(cursor, kMe, *me_);
  EXPECT_EQ(r.block, nullptr);
  // The other states were left alone.
  directory_.for_each_block([&](MarkedBlock& b) {
    if (&b != swept && &b != empty) {
      EXPECT_NE(b.state().owner, kMe);
    }
  });
}

TEST_F(DirectoryTest, AnAllZeroHeaderWordIsNeitherClaimedNorSwept) {
  MarkedBlock* block = block_in(BlockState::kSwept, 3);
  const BlockStateWord before = block->state();
  block->publish(BlockStateWord::unpack(0));  // what a purged header reads as
  ClaimCursor cursor;
  EXPECT_EQ(directory_.try_claim(cursor, kMe, *me_).block, nullptr);
  auto keep_none = [](void*) { return false; };
  EXPECT_EQ(directory_.sweep(keep_none).freed_cells, 0u);
  EXPECT_EQ(block->live_cell_count(), 3u);
  EXPECT_EQ(block->state(), BlockStateWord{});
  block->publish(before);
}

TEST_F(DirectoryTest, ClaimAfterRecyclingWithAStaleWordFails) {
  MarkedBlock* block = block_in(BlockState::kEmpty);
  const BlockStateWord stale = block->state();
  EXPECT_EQ(release_empty(), 1u);
  EXPECT_EQ(directory_.block_at(0), nullptr) << "the slot is emptied";
  MarkedBlock* again = directory_.take_fresh_block(kOther);
  ASSERT_EQ(again, block) << "the pool hands the same block back (LIFO)";
  EXPECT_EQ(again->state().generation, stale.generation + 1);
  EXPECT_EQ(directory_.block_at(0), again) << "the free slot is reused";
  EXPECT_EQ(directory_.block_slots(), 1u);
  // A claimer that read the word before the recycle must lose.
  EXPECT_FALSE(again->try_transition(stale, stale.with(BlockState::kOwned, kMe)));
  again->publish(again->state().with(BlockState::kEmpty));
  BlockStateWord stale_empty = again->state();
  stale_empty.generation -= 1;
  EXPECT_FALSE(again->try_transition(stale_empty, stale_empty.with(BlockState::kOwned, kMe)));
}

TEST_F(DirectoryTest, EagerSweepSetsTheStateFromWhatSurvives) {
  const std::size_t n = cells_per_block(3);
  MarkedBlock* keep_all = block_in(BlockState::kFull, n);
  MarkedBlock* keep_some = block_in(BlockState::kFull, n);
  MarkedBlock* keep_none = block_in(BlockState::kSwept, 10);
  MarkedBlock* owned = block_in(BlockState::kOwned, 10);
  std::size_t calls_on_owned = 0;
  auto predicate = [&](void* cell) {
    MarkedBlock* b = MarkedBlock::of(cell);
    if (b == owned) ++calls_on_owned;
    if (b == keep_all) return true;
    if (b == keep_some) return b->cell_start(cell) != b->cell_at(0);
    return false;
  };
  const std::uint64_t cycle = directory_.cycle();
  const SweepCounts c = directory_.sweep(predicate);
  EXPECT_EQ(calls_on_owned, 0u) << "the sweeper skips owned blocks";
  EXPECT_EQ(c.live_cells, n + n - 1);
  EXPECT_EQ(c.freed_cells, 1u + 10u);
  EXPECT_EQ(keep_all->state().state, BlockState::kFull);
  EXPECT_EQ(keep_some->state().state, BlockState::kSwept);
  EXPECT_EQ(keep_none->state().state, BlockState::kEmpty);
  EXPECT_EQ(owned->state().state, BlockState::kOwned);
  EXPECT_EQ(owned->state().owner, kOther);
  EXPECT_EQ(owned->live_cell_count(), 10u);
  EXPECT_GT(directory_.cycle(), cycle) << "a sweep starts a new claim cycle";
  for (MarkedBlock* b : {keep_all, keep_some, keep_none}) {
    EXPECT_EQ(b->live_cell_count() + b->free_cell_count(), b->cell_count());
    b->check_invariants();
  }
}

TEST_F(DirectoryTest, CursorRestartsWhenTheCycleMoves) {
  MarkedBlock* a = block_in(BlockState::kSwept, 1);
  ClaimCursor cursor;
  ASSERT_EQ(directory_.try_claim(cursor, kMe, *me_).block, a);
  a->publish(a->state().with(BlockState::kSwept));
  auto keep_all = [](void*) { return true; };
  directory_.sweep(keep_all);
  EXPECT_EQ(directory_.try_claim(cursor, kMe, *me_).block, a) << "a new cycle rescans from the start";
}

TEST_F(DirectoryTest, LazySweepMarksFullAndSweptBlocksAndTheClaimerSweeps) {
  const std::size_t n = cells_per_block(3);
  // Registered in this order so that a descending lane's claim scan, which
  // runs from the last slot down, meets `full` first.
  MarkedBlock* empty = block_in(BlockState::kEmpty);
  MarkedBlock* owned = block_in(BlockState::kOwned, 4);
  MarkedBlock* swept = block_in(BlockState::kSwept, 6);
  MarkedBlock* full = block_in(BlockState::kFull, n);
  auto keep_first_three = [](void* cell) {
    MarkedBlock* b = MarkedBlock::of(cell);
    return cell == b->cell_at(0) || cell == b->cell_at(1) || cell == b->cell_at(2);
  };
  EXPECT_EQ(directory_.begin_lazy_sweep(keep_first_three), 2u);
  EXPECT_EQ(full->state().state, BlockState::kUnswept);
  EXPECT_EQ(swept->state().state, BlockState::kUnswept);
  EXPECT_EQ(empty->state().state, BlockState::kEmpty);
  EXPECT_EQ(owned->state().state, BlockState::kOwned);

  ClaimCursor cursor;
  cursor.descending = true;
  const ClaimResult r = directory_.try_claim(cursor, kMe, *me_);
  ASSERT_EQ(r.block, full);
  EXPECT_TRUE(r.lazily_swept);
  EXPECT_EQ(r.swept.live_cells, 3u);
  EXPECT_EQ(r.swept.freed_cells, n - 3);
  EXPECT_EQ(full->live_cell_count(), 3u);
  EXPECT_EQ(full->state().state, BlockState::kOwned);

  const SweepCounts rest = directory_.finish_lazy_sweep();
  EXPECT_EQ(rest.live_cells, 3u);
  EXPECT_EQ(rest.freed_cells, 3u);
  EXPECT_EQ(swept->state().state, BlockState::kSwept);
  EXPECT_EQ(swept->live_cell_count(), 3u);
  EXPECT_EQ(owned->live_cell_count(), 4u) << "owned blocks are not swept";
  full->publish(full->state().with(BlockState::kSwept));
}

// finish_lazy_sweep skips its walk when the directory's UNSWEPT count
// reads zero. However many of a cycle's UNSWEPT blocks the claims (or the
// sweeper's S1) took before it, finish sweeps the rest and leaves none
// UNSWEPT. A count that reaches zero early (the mutants
// unswept_count_sub_twice and unswept_count_misses_add) makes finish skip
// blocks that are still UNSWEPT; debug builds abort on the skip itself.
// Each case has a directory of its own, so that no earlier case's count
// (right or wrong) carries over.
TEST_F(DirectoryTest, FinishLazySweepLeavesNoBlockUnsweptWhateverWasTakenBefore) {
  constexpr std::size_t kBlocks = 4;
  auto keep_first = [](void* cell) { return cell == MarkedBlock::of(cell)->cell_at(0); };
  for (const bool by_claims : {true, false}) {
    for (std::size_t taken = 0; taken <= kBlocks; ++taken) {
      const std::string how = " after " + std::to_string(taken) + (by_claims ? " lazy claims" : " S1 sweeps");
      Directory directory(3, pool_, epochs_);
      std::vector<MarkedBlock*> blocks;
      for (std::size_t i = 0; i < kBlocks; ++i) {
        MarkedBlock* block = directory.take_fresh_block(kOther);
        ASSERT_NE(block, nullptr);
        for (std::size_t c = 0; c < 2; ++c) block->live_bits().set(MarkedBlock::atom_of(block->cell_at(c)));
        block->publish(block->state().with(BlockState::kSwept, 0));
        blocks.push_back(block);
      }
      ASSERT_EQ(directory.begin_lazy_sweep(keep_first), kBlocks);
      ClaimCursor cursor;
      SweepCounts by_sweeper;
      for (std::size_t i = 0; i < taken; ++i) {
        if (by_claims) {
          const ClaimResult r = directory.try_claim(cursor, kMe, *me_);
          ASSERT_TRUE(r.lazily_swept) << how;
          r.block->publish(r.block->state().with(BlockState::kSwept, 0));
        } else {
          ASSERT_TRUE(directory.sweep_unswept(*blocks[i], by_sweeper)) << how;
        }
      }
      EXPECT_EQ(directory.finish_lazy_sweep().blocks, kBlocks - taken) << "blocks finish swept" << how;
      for (MarkedBlock* b : blocks) {
        EXPECT_NE(b->state().state, BlockState::kUnswept) << how;
        EXPECT_EQ(b->live_cell_count(), 1u) << how;
      }
    }
  }
}

// Claim lanes (directory.cpp): owners attached one after the other scan
// from opposite ends, and each keeps its direction across sweep passes.
TEST_F(DirectoryTest, ConsecutiveOwnersClaimFromOppositeEndsInEveryPass) {
  constexpr std::size_t kBlocks = 4;
  std::vector<MarkedBlock*> blocks;
  for (std::size_t i = 0; i < kBlocks; ++i) blocks.push_back(block_in(BlockState::kSwept, 1));
  auto keep_first = [](void* cell) { return cell == MarkedBlock::of(cell)->cell_at(0); };
  for (std::uint32_t owner : {1u, 2u, 3u, 4u}) {
    EXPECT_NE(ClaimCursor::lane_descends(owner), ClaimCursor::lane_descends(owner + 1)) << owner;
  }
  ClaimCursor up;
  ClaimCursor down;
  up.descending = ClaimCursor::lane_descends(5);
  down.descending = ClaimCursor::lane_descends(6);
  ASSERT_FALSE(up.descending);
  for (int pass = 0; pass < 3; ++pass) {
    const ClaimResult a = directory_.try_claim(up, kMe, *me_);
    const ClaimResult b = directory_.try_claim(down, kOther, *me_);
    EXPECT_EQ(a.block, blocks.front()) << "pass " << pass;
    EXPECT_EQ(b.block, blocks.back()) << "pass " << pass;
    EXPECT_EQ(a.cas_failures + b.cas_failures, 0u);
    for (const ClaimResult& r : {a, b}) r.block->publish(r.block->state().with(BlockState::kSwept));
    if (pass == 0) directory_.begin_lazy_sweep(keep_first);
    if (pass == 1) directory_.sweep(keep_first);
  }
  directory_.sweep(keep_first);  // nothing left UNSWEPT for the fixture's teardown
}

// The steady state a lane reaches: the directory holds more blocks than a
// cycle fills (EMPTY ones the pool keeps), and the lane claims the blocks
// it filled in the last cycle, sweeping each lazily, so the pause's
// finish_lazy_sweep finds nothing left to sweep and the extra EMPTY blocks
// stay untouched. (Reversing the scan with every pass, the order this
// replaced, claimed the EMPTY ones every other cycle and left the filled
// ones to finish_lazy_sweep.)
TEST_F(DirectoryTest, ALaneReusesTheBlocksItFilledAndLeavesNoneToTheFinish) {
  constexpr std::size_t kBlocks = 8;
  constexpr std::size_t kFilled = 3;
  auto keep_first = [](void* cell) { return cell == MarkedBlock::of(cell)->cell_at(0); };
  for (const bool descending : {false, true}) {
    const std::string lane = descending ? " (descending lane)" : " (ascending lane)";
    Directory directory(3, pool_, epochs_);
    for (std::size_t i = 0; i < kBlocks; ++i) {
      MarkedBlock* block = directory.take_fresh_block(kOther);
      ASSERT_NE(block, nullptr);
      block->publish(block->state().with(BlockState::kEmpty, 0));
    }
    ClaimCursor cursor;
    cursor.descending = descending;
    std::set<MarkedBlock*> last_filled;
    for (int cycle = 0; cycle < 4; ++cycle) {
      std::set<MarkedBlock*> filled;
      for (std::size_t i = 0; i < kFilled; ++i) {
        const ClaimResult r = directory.try_claim(cursor, kMe, *me_);
        ASSERT_NE(r.block, nullptr) << lane;
        EXPECT_EQ(r.lazily_swept, cycle > 0) << "cycle " << cycle << lane;
        for (std::size_t c = 0; c < 2; ++c) r.block->live_bits().set(MarkedBlock::atom_of(r.block->cell_at(c)));
        r.block->publish(r.block->state().with(BlockState::kSwept, 0));
        filled.insert(r.block);
      }
      if (cycle > 0) {
        EXPECT_EQ(filled, last_filled) << "cycle " << cycle << lane;
      }
      EXPECT_EQ(directory.finish_lazy_sweep().blocks, 0u) << "cycle " << cycle << lane;
      EXPECT_EQ(directory.begin_lazy_sweep(keep_first), kFilled) << lane;
      last_filled = filled;
    }
    EXPECT_EQ(directory.finish_lazy_sweep().blocks, kFilled) << lane;
  }
}

TEST_F(DirectoryTest, ADescendingScanRevisitsTheBlockGivenUpAboveItsCursor) {
  MarkedBlock* low = block_in(BlockState::kSwept, 1);
  MarkedBlock* high = block_in(BlockState::kSwept, 1);
  ClaimCursor cursor;
  cursor.descending = true;
  ASSERT_EQ(directory_.try_claim(cursor, kMe, *me_).block, high);
  high->publish(high->state().with(BlockState::kSwept));
  cursor.revisit(high->registry_index());
  EXPECT_EQ(directory_.try_claim(cursor, kMe, *me_).block, high) << "revisit puts the slot back into this pass";
  EXPECT_EQ(directory_.try_claim(cursor, kMe, *me_).block, low);
  EXPECT_EQ(directory_.try_claim(cursor, kMe, *me_).block, nullptr);
  for (MarkedBlock* b : {low, high}) b->publish(b->state().with(BlockState::kSwept));
}

TEST_F(DirectoryTest, ReleaseEmptyBlocksReturnsOnlyEmptyOnes) {
  block_in(BlockState::kEmpty);
  MarkedBlock* swept = block_in(BlockState::kSwept, 2);
  block_in(BlockState::kEmpty);
  MarkedBlock* owned = block_in(BlockState::kOwned);
  EXPECT_EQ(pool_.stats().in_use_bytes, 4 * kBlockSize);
  EXPECT_EQ(release_empty(), 2u);
  EXPECT_EQ(pool_.stats().in_use_bytes, 2 * kBlockSize);
  std::set<MarkedBlock*> left;
  directory_.for_each_block([&](MarkedBlock& b) { left.insert(&b); });
  EXPECT_EQ(left, (std::set<MarkedBlock*>{swept, owned}));
  EXPECT_EQ(release_empty(), 0u);
  const DirectoryStats s = directory_.stats();
  EXPECT_EQ(s.blocks, 2u);
  EXPECT_EQ(s.blocks_in_state[static_cast<std::size_t>(BlockState::kSwept)], 1u);
  EXPECT_EQ(s.blocks_in_state[static_cast<std::size_t>(BlockState::kOwned)], 1u);
  EXPECT_EQ(s.live_cells, 2u) << "live cells of blocks nobody owns";
  EXPECT_EQ(s.capacity_cells, 2 * cells_per_block(3));
}

TEST_F(DirectoryTest, RegistryGrowsPastOneSegment) {
  const std::size_t blocks = test::scaled(600, 530);
  std::set<MarkedBlock*> taken;
  for (std::size_t i = 0; i < blocks; ++i) {
    MarkedBlock* b = directory_.take_fresh_block(kMe);
    ASSERT_NE(b, nullptr);
    taken.insert(b);
    b->publish(b->state().with(BlockState::kEmpty));
  }
  EXPECT_EQ(directory_.block_slots(), blocks);
  std::set<MarkedBlock*> seen;
  for (std::size_t i = 0; i < blocks; ++i) {
    MarkedBlock* b = directory_.block_at(i);
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(b->registry_index(), i);
    seen.insert(b);
  }
  EXPECT_EQ(seen, taken);
  ClaimCursor cursor;
  std::size_t claimed = 0;
  while (directory_.try_claim(cursor, kMe, *me_).block != nullptr) ++claimed;
  EXPECT_EQ(claimed, blocks) << "one scan claims every empty block once";
}

// ---- S2: retiring empty blocks -------------------------------------------

TEST_F(DirectoryTest, RetireKeepsTheFirstKEmptyBlocksAndRetiresTheRest) {
  const std::size_t n = cells_per_block(3);
  std::vector<MarkedBlock*> empties;
  std::vector<MarkedBlock*> others;
  for (int i = 0; i < 6; ++i) {
    empties.push_back(block_in(BlockState::kEmpty));
    // Interleave every other state, so "the first K" is by slot order.
    const BlockState other[] = {BlockState::kSwept, BlockState::kFull, BlockState::kOwned,
                                BlockState::kUnswept, BlockState::kSweeping, BlockState::kSwept};
    others.push_back(block_in(other[i], other[i] == BlockState::kFull ? n : 2));
  }
  std::vector<BlockStateWord> before_other;
  for (MarkedBlock* b : others) before_other.push_back(b->state());
  std::vector<BlockStateWord> before_empty;
  for (MarkedBlock* b : empties) before_empty.push_back(b->state());
  const std::uint64_t cycle = directory_.cycle();

  EXPECT_EQ(directory_.retire_empty_blocks(2, limbo_, SIZE_MAX), 4u);
  EXPECT_EQ(limbo_.size(), 4u);
  EXPECT_EQ(limbo_.stats().retired, 4u);
  EXPECT_GT(directory_.cycle(), cycle) << "a retire starts a new claim cycle";
  for (std::size_t i = 0; i < empties.size(); ++i) {
    MarkedBlock* b = empties[i];
    if (i < 2) {
      EXPECT_EQ(b->state(), before_empty[i]) << "kept block " << i << " changed";
      EXPECT_EQ(directory_.block_at(b->registry_index()), b);
    } else {
      EXPECT_EQ(b->state(), before_empty[i].with(BlockState::kRetired)) << "same generation, RETIRED";
      EXPECT_EQ(directory_.block_at(b->registry_index()), nullptr) << "the slot is cleared";
      EXPECT_TRUE(pool_.is_handed_out(b)) << "retired is not freed";
    }
  }
  for (std::size_t i = 0; i < others.size(); ++i) {
    EXPECT_EQ(others[i]->state(), before_other[i]) << "a non-empty block was touched";
    EXPECT_EQ(directory_.block_at(others[i]->registry_index()), others[i]);
  }
  const DirectoryStats s = directory_.stats();
  EXPECT_EQ(s.blocks, 8u);
  EXPECT_EQ(s.blocks_in_state[static_cast<std::size_t>(BlockState::kEmpty)], 2u);
  EXPECT_EQ(s.blocks_in_state[static_cast<std::size_t>(BlockState::kRetired)], 0u)
      << "retired blocks are no longer reachable from the registry";

  EXPECT_EQ(directory_.retire_empty_blocks(2, limbo_, SIZE_MAX), 0u) << "only the kept ones are left";
  EXPECT_EQ(directory_.retire_empty_blocks(0, limbo_, SIZE_MAX), 2u);
  EXPECT_EQ(limbo_.size(), 6u);
  // Leave nothing in a state the directory's destructor would not expect.
  for (MarkedBlock* b : others) b->publish(b->state().with(BlockState::kSwept));
}

TEST_F(DirectoryTest, RetireWithKeepAboveTheEmptyCountRetiresNothing) {
  for (int i = 0; i < 3; ++i) block_in(BlockState::kEmpty);
  EXPECT_EQ(directory_.retire_empty_blocks(3, limbo_, SIZE_MAX), 0u);
  EXPECT_EQ(directory_.retire_empty_blocks(10, limbo_, SIZE_MAX), 0u);
  EXPECT_EQ(limbo_.size(), 0u);
  EXPECT_EQ(directory_.stats().blocks_in_state[static_cast<std::size_t>(BlockState::kEmpty)], 3u);
}

TEST_F(DirectoryTest, RetireStopsWhenTheLimboReachesItsCap) {
  std::vector<MarkedBlock*> empties;
  for (int i = 0; i < 6; ++i) empties.push_back(block_in(BlockState::kEmpty));
  EXPECT_EQ(directory_.retire_empty_blocks(0, limbo_, 3), 3u);
  EXPECT_EQ(limbo_.size(), 3u);
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(empties[i]->state().state, i < 3 ? BlockState::kRetired : BlockState::kEmpty) << "block " << i;
  }
  EXPECT_EQ(directory_.retire_empty_blocks(0, limbo_, 3), 0u) << "the limbo is at its cap";
  EXPECT_EQ(directory_.retire_empty_blocks(0, limbo_, 2), 0u) << "and above a smaller cap";
  EXPECT_EQ(directory_.retire_empty_blocks(0, limbo_, 5), 2u);
  EXPECT_EQ(limbo_.size(), 5u);
  EXPECT_EQ(empties[5]->state().state, BlockState::kEmpty);
  // The cap counts every block in the limbo, not only this call's.
  for (int i = 0; i < 3; ++i) limbo_.reclaim(epochs_, pool_);
  EXPECT_EQ(limbo_.size(), 0u);
  EXPECT_EQ(directory_.retire_empty_blocks(0, limbo_, 1), 1u);
  EXPECT_EQ(empties[5]->state().state, BlockState::kRetired);
}

TEST_F(DirectoryTest, RetireWithAZeroCapRetiresNothing) {
  for (int i = 0; i < 2; ++i) block_in(BlockState::kEmpty);
  EXPECT_EQ(directory_.retire_empty_blocks(0, limbo_, 0), 0u);
  EXPECT_EQ(limbo_.size(), 0u);
}

TEST_F(DirectoryTest, RetiredBlocksGoBackToThePoolAndReturnWithTheNextGeneration) {
  struct Seen {
    MarkedBlock* block;
    std::uint32_t generation;
    std::size_t slot;
  };
  std::vector<Seen> retired;
  block_in(BlockState::kSwept, 1);  // stays
  for (int i = 0; i < 3; ++i) {
    MarkedBlock* b = block_in(BlockState::kEmpty);
    retired.push_back({b, b->state().generation, b->registry_index()});
  }
  const std::size_t slots = directory_.block_slots();
  ASSERT_EQ(pool_.stats().in_use_bytes, 4 * kBlockSize);
  ASSERT_EQ(directory_.retire_empty_blocks(0, limbo_, SIZE_MAX), 3u);
  std::size_t calls = 0;
  while (limbo_.size() != 0 && calls < 10) {
    ++calls;
    limbo_.reclaim(epochs_, pool_);
  }
  EXPECT_EQ(calls, 2u) << "nobody pinned: the second reclaim ends the grace period";
  EXPECT_EQ(pool_.stats().in_use_bytes, kBlockSize);
  for (const Seen& s : retired) EXPECT_FALSE(pool_.is_handed_out(s.block));

  std::set<std::size_t> free_slots;
  for (const Seen& s : retired) free_slots.insert(s.slot);
  for (int i = 0; i < 3; ++i) {
    MarkedBlock* b = directory_.take_fresh_block(kMe);
    ASSERT_NE(b, nullptr);
    bool known = false;
    for (const Seen& s : retired) {
      if (s.block != b) continue;
      known = true;
      EXPECT_EQ(b->state().generation, s.generation + 1) << "a recycled block gets a new generation";
    }
    EXPECT_TRUE(known) << "the pool carved a new block although freed ones were cached";
    EXPECT_EQ(b->state().state, BlockState::kOwned);
    EXPECT_EQ(b->directory(), &directory_);
    EXPECT_EQ(free_slots.erase(b->registry_index()), 1u) << "a freed slot is reused";
    EXPECT_EQ(directory_.block_at(b->registry_index()), b);
  }
  EXPECT_EQ(directory_.block_slots(), slots) << "the registry did not grow";
}

TEST_F(DirectoryTest, AReaderPinnedBeforeTheRetireKeepsTheBlockReadable) {
  MarkedBlock* block = block_in(BlockState::kEmpty);
  const std::size_t slot = block->registry_index();
  EpochParticipant* reader = epochs_.register_thread();
  struct Unregister {  // also when an assertion returns early
    EpochDomain& epochs;
    EpochParticipant* participant;
    ~Unregister() { epochs.unregister_thread(participant); }
  } unregister{epochs_, reader};
  reader->pin(epochs_.global());                        // A1
  MarkedBlock* seen = directory_.block_at(slot);         // A2
  ASSERT_EQ(seen, block);
  const BlockStateWord word = seen->state();             // A3
  ASSERT_EQ(word.state, BlockState::kEmpty);

  ASSERT_EQ(directory_.retire_empty_blocks(0, limbo_, SIZE_MAX), 1u);  // S2 under the reader
  EXPECT_EQ(directory_.block_at(slot), nullptr);
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(limbo_.reclaim(epochs_, pool_), 0u) << "freed a block a pinned reader holds";
    // The reader still reads the header (ASan would report a freed block).
    EXPECT_EQ(seen->state(), word.with(BlockState::kRetired));
    EXPECT_EQ(seen->directory(), &directory_);
  }
  EXPECT_TRUE(pool_.is_handed_out(seen));
  EXPECT_FALSE(seen->try_transition(word, word.with(BlockState::kOwned, kMe)))
      << "the reader's claim CAS (A5) loses to the retire";
  reader->unpin();  // A7

  const auto [calls, freed] = test::reclaim_until_freed(limbo_, epochs_, pool_);
  EXPECT_EQ(freed, 1u);
  EXPECT_LE(calls, 3u);
  EXPECT_FALSE(pool_.is_handed_out(block));
}

TEST_F(DirectoryTest, AClaimScanSkipsARetiredBlockItStillSees) {
  MarkedBlock* block = block_in(BlockState::kEmpty);
  const BlockStateWord word = block->state();
  ASSERT_TRUE(block->try_transition(word, word.with(BlockState::kRetired)));  // S2 began, not yet unlinked
  ClaimCursor cursor;
  EXPECT_EQ(directory_.try_claim(cursor, kMe, *me_).block, nullptr);
  EXPECT_EQ(block->state().state, BlockState::kRetired);
  block->publish(word);
}

// Claimers take blocks, empty them and give them back, while another thread
// retires empty blocks and frees them after their grace period. A claimer
// reads the state word of every candidate inside its pin; if a block were
// freed under it, ASan reports the read of the poisoned header and TSan the
// race with the next format; try_claim's directory check aborts on a block
// recycled into another directory. A held block must keep its generation.
TEST(DirectoryConcurrency, RetiringBesideClaimersNeverFreesABlockAClaimerCanRead) {
  HeapBudget budget(0);
  BlockPool pool(AllocatorConfig{}, budget);
  EpochDomain epochs;
  Limbo limbo;
  Directory directory(2, pool, epochs);
  constexpr std::size_t kMaxInUse = 32;
  std::atomic<std::size_t> violations{0};
  std::atomic<std::size_t> claims{0};
  std::atomic<bool> stop{false};
  const std::size_t rounds = test::scaled(20000, 10000);

  auto claimer = [&](std::uint32_t owner) {
    EpochParticipant* self = epochs.register_thread();
    ClaimCursor cursor;
    std::mt19937_64 rng(owner);
    for (std::size_t round = 0; round < rounds; ++round) {
      // Now and then a fresh block although one could be claimed: surplus
      // EMPTY blocks for the retirer.
      const bool fresh_first = rng() % 4 == 0;
      MarkedBlock* block = fresh_first ? nullptr : directory.try_claim(cursor, owner, *self).block;
      if (block == nullptr && !fresh_first) {
        cursor = {};
        block = directory.try_claim(cursor, owner, *self).block;
      }
      if (block == nullptr && pool.stats().in_use_bytes < kMaxInUse * kBlockSize) {
        block = directory.take_fresh_block(owner);
      }
      if (block == nullptr) {
        std::this_thread::yield();
        continue;
      }
      claims.fetch_add(1, std::memory_order_relaxed);
      const BlockStateWord mine = block->state();
      if (mine.state != BlockState::kOwned || mine.owner != owner) violations.fetch_add(1);
      if (block->directory() != &directory || !pool.is_handed_out(block)) violations.fetch_add(1);
      block->live_bits().clear_all();
      const bool keep_one = rng() % 4 == 0;
      if (keep_one) block->live_bits().set(MarkedBlock::atom_of(block->cell_at(rng() % block->cell_count())));
      if (round % 16 == 0) std::this_thread::yield();
      if (block->state() != mine) violations.fetch_add(1);  // nobody took it from us
      block->publish(mine.with(keep_one ? BlockState::kSwept : BlockState::kEmpty));
    }
    epochs.unregister_thread(self);
  };

  std::size_t retired = 0;
  std::size_t freed = 0;
  std::thread retirer([&] {
    for (std::size_t pass = 0; !stop.load(); ++pass) {
      retired += directory.retire_empty_blocks(pass % 2, limbo, 8);
      freed += limbo.reclaim(epochs, pool);
      std::this_thread::yield();
    }
  });
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < test::thread_count(); ++t) threads.emplace_back(claimer, 200 + t);
  for (auto& t : threads) t.join();
  stop.store(true);
  retirer.join();
  for (int i = 0; i < 3; ++i) freed += limbo.reclaim(epochs, pool);

  EXPECT_EQ(violations.load(), 0u);
  EXPECT_GT(claims.load(), 0u);
  EXPECT_GT(retired, 0u) << "the test never retired a block";
  EXPECT_EQ(freed, retired) << "with nobody registered, every retired block is freed";
  EXPECT_EQ(limbo.size(), 0u);
  std::size_t left = 0;
  directory.for_each_block([&](MarkedBlock& b) {
    ++left;
    EXPECT_NE(b.state().state, BlockState::kOwned);
    EXPECT_NE(b.state().state, BlockState::kRetired);
  });
  EXPECT_EQ(pool.stats().in_use_bytes, left * kBlockSize) << "every block is in the registry or back in the pool";
  RecordProperty("retired", static_cast<int>(retired));
}

// Several threads claim (and take fresh blocks from) one directory while a
// sweeper sweeps it. A per-block holder count, raised right after a claim
// and lowered right before the give-up store, must never exceed one; the
// sweeper's predicate checks that no owner holds the block it sweeps. Owners
// also flip live bits and check nobody else changed them while they held it.
TEST(DirectoryConcurrency, NoBlockIsEverHeldByTwoThreads) {
  HeapBudget budget(0);
  BlockPool pool(AllocatorConfig{}, budget);
  EpochDomain epochs;
  Directory directory(1, pool, epochs);
  constexpr std::size_t kMaxBlocks = 48;  // well inside one chunk
  std::array<std::atomic<int>, kBlocksPerChunk> holders{};
  std::atomic<std::size_t> fresh_blocks{0};
  std::atomic<std::size_t> violations{0};
  std::atomic<bool> stop{false};
  const std::size_t rounds = test::scaled(30000, 10000);

  auto index_of = [&](MarkedBlock* b) { return pool.chunk_of(b)->index_of(b); };

  auto claimer = [&](std::uint32_t owner) {
    EpochParticipant* self = epochs.register_thread();
    ClaimCursor cursor;
    std::mt19937_64 rng(owner);
    for (std::size_t round = 0; round < rounds; ++round) {
      MarkedBlock* block = directory.try_claim(cursor, owner, *self).block;
      if (block == nullptr && fresh_blocks.fetch_add(1) < kMaxBlocks) {
        block = directory.take_fresh_block(owner);
      }
      if (block == nullptr) {
        cursor = {};  // rescan from the start next time
        std::this_thread::yield();
        continue;
      }
      if (holders[index_of(block)].fetch_add(1) != 0) violations.fetch_add(1);
      const BlockStateWord mine = block->state();
      if (mine.state != BlockState::kOwned || mine.owner != owner) violations.fetch_add(1);
      // Allocate or free a few cells by hand, as a local allocator would.
      std::array<std::uint64_t, AtomBitmap::kWords> expected{};
      for (std::size_t w = 0; w < AtomBitmap::kWords; ++w) expected[w] = block->live_bits().word(w);
      for (int k = 0; k < 4; ++k) {
        const std::size_t atom = MarkedBlock::atom_of(block->cell_at(rng() % block->cell_count()));
        if (rng() % 3 == 0) {
          block->live_bits().clear(atom);
          expected[atom / 64] &= ~(std::uint64_t{1} << (atom % 64));
        } else {
          block->live_bits().set(atom);
          expected[atom / 64] |= std::uint64_t{1} << (atom % 64);
        }
      }
      if (round % 8 == 0) std::this_thread::yield();
      for (std::size_t w = 0; w < AtomBitmap::kWords; ++w) {
        if (block->live_bits().word(w) != expected[w]) violations.fetch_add(1);
      }
      const std::size_t live = block->live_cell_count();
      const BlockState next = live == 0                       ? BlockState::kEmpty
                              : live == block->cell_count() ? BlockState::kFull
                                                            : BlockState::kSwept;
      holders[index_of(block)].fetch_sub(1);
      block->publish(mine.with(next));
    }
    epochs.unregister_thread(self);
  };

  auto is_live = [&](void* cell) {
    MarkedBlock* block = MarkedBlock::of(cell);
    std::atomic<int>& h = holders[index_of(block)];
    if (h.fetch_add(1) != 0) violations.fetch_add(1);
    h.fetch_sub(1);
    return (reinterpret_cast<std::uintptr_t>(cell) / 16) % 5 != 0;
  };
  std::thread sweeper([&] {
    while (!stop.load()) {
      directory.sweep(is_live);
      std::this_thread::yield();
    }
  });
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < test::thread_count(); ++t) threads.emplace_back(claimer, 100 + t);
  for (auto& t : threads) t.join();
  stop.store(true);
  sweeper.join();

  EXPECT_EQ(violations.load(), 0u);
  EXPECT_EQ(pool.stats().chunks, 1u);
  directory.for_each_block([&](MarkedBlock& b) {
    EXPECT_NE(b.state().state, BlockState::kOwned) << "every claimer gave its block back";
    EXPECT_EQ(holders[index_of(&b)].load(), 0);
    b.check_invariants();
  });
}

}  // namespace
}  // namespace handoff
