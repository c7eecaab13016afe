// Marked blocks: alignment, geometry, interior pointers, the state word,
// the live bitmap and sweeping (marked_block.h, atom_bitmap.h).
#include <handoff/block_pool.h>
#include <handoff/liveness.h>
#include <handoff/marked_block.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstdint>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace handoff {
namespace {

std::uintptr_t address(const void* p) { return reinterpret_cast<std::uintptr_t>(p); }

// A pool and one formatted block per test; the block is released at the end.
class MarkedBlockTest : public ::testing::Test {
 protected:
  MarkedBlockTest() : budget_(0), pool_(AllocatorConfig{}, budget_) {}
  ~MarkedBlockTest() override {
    for (void* b : acquired_) pool_.release(b);
  }

  MarkedBlock* fresh_block(std::size_t cls, BlockState state = BlockState::kOwned) {
    const BlockPool::Acquired a = pool_.acquire();
    EXPECT_NE(a.memory, nullptr);
    if (a.memory == nullptr) return nullptr;
    acquired_.push_back(a.memory);
    return MarkedBlock::format(a.memory, nullptr, cls, {a.generation, 1, state});
  }

  HeapBudget budget_;
  BlockPool pool_;
  std::vector<void*> acquired_;
};

TEST_F(MarkedBlockTest, EveryPoolBlockIsSixteenKiBAlignedAndDistinct) {
  std::set<std::uintptr_t> seen;
  // More than one chunk's worth, so a second chunk is carved too.
  for (std::size_t i = 0; i < kBlocksPerChunk + 8; ++i) {
    MarkedBlock* block = fresh_block(i % kNumSizeClasses);
    ASSERT_NE(block, nullptr);
    EXPECT_EQ(address(block) % kBlockSize, 0u) << "block " << i;
    EXPECT_TRUE(seen.insert(address(block)).second) << "block handed out twice";
  }
  EXPECT_GE(pool_.stats().chunks, 2u);
}

TEST_F(MarkedBlockTest, OfAnyInteriorPointerIsTheBlock) {
  MarkedBlock* block = fresh_block(3);
  ASSERT_NE(block, nullptr);
  const char* base = reinterpret_cast<const char*>(block);
  for (std::size_t offset = 0; offset < kBlockSize; offset += 7) EXPECT_EQ(MarkedBlock::of(base + offset), block);
  EXPECT_EQ(MarkedBlock::of(base + kBlockSize - 1), block);
  EXPECT_NE(MarkedBlock::of(base + kBlockSize), block);
  EXPECT_NE(MarkedBlock::of(base - 1), block);
}

TEST_F(MarkedBlockTest, HeaderFitsBeforeTheFirstCell) {
  static_assert(sizeof(MarkedBlock) <= kBlockHeaderSize);
  MarkedBlock* block = fresh_block(0);
  ASSERT_NE(block, nullptr);
  EXPECT_EQ(block->begin(), reinterpret_cast<char*>(block) + kBlockHeaderSize);
  EXPECT_LE(sizeof(MarkedBlock), static_cast<std::size_t>(block->begin() - reinterpret_cast<char*>(block)));
}

TEST_F(MarkedBlockTest, GeometryOfEveryClass) {
  for (std::size_t cls = 0; cls < kNumSizeClasses; ++cls) {
    MarkedBlock* block = fresh_block(cls);
    ASSERT_NE(block, nullptr);
    SCOPED_TRACE("class " + std::to_string(cls));
    EXPECT_EQ(block->size_class(), cls);
    EXPECT_EQ(block->cell_size(), class_size(cls));
    EXPECT_EQ(block->cell_count(), cells_per_block(cls));
    EXPECT_LE(block->end(), reinterpret_cast<char*>(block) + kBlockSize);
    EXPECT_EQ(static_cast<std::size_t>(block->end() - block->begin()), block->cell_count() * block->cell_size());
    std::size_t cells = 0;
    for (std::size_t i = 0; i < block->cell_count(); ++i) {
      char* cell = block->cell_at(i);
      ASSERT_EQ(address(cell) % kAtomSize, 0u) << "cell " << i;
      ASSERT_GE(cell, block->begin());
      ASSERT_LE(cell + block->cell_size(), block->end());
      ASSERT_EQ(MarkedBlock::of(cell), block);
      ++cells;
    }
    EXPECT_EQ(cells, cells_per_block(cls));
    // The cell-start mask has one bit per cell.
    std::size_t mask_bits = 0;
    for (std::uint64_t w : block->cell_start_mask()) mask_bits += static_cast<std::size_t>(std::popcount(w));
    EXPECT_EQ(mask_bits, block->cell_count());
  }
}

TEST_F(MarkedBlockTest, FormatLeavesEveryCellFree) {
  MarkedBlock* block = fresh_block(2);
  ASSERT_NE(block, nullptr);
  EXPECT_EQ(block->live_cell_count(), 0u);
  EXPECT_EQ(block->free_cell_count(), block->cell_count());
  EXPECT_EQ(block->state().state, BlockState::kOwned);
  EXPECT_EQ(block->state().owner, 1u);
}

TEST_F(MarkedBlockTest, CellStartOfEveryInteriorPointer) {
  for (std::size_t cls = 0; cls < kNumSizeClasses; ++cls) {
    MarkedBlock* block = fresh_block(cls);
    ASSERT_NE(block, nullptr);
    const std::size_t size = block->cell_size();
    const std::size_t offsets[] = {0, 1, 7, 8, 15, 16, size / 2, size - 8, size - 1};
    for (std::size_t i = 0; i < block->cell_count(); ++i) {
      char* cell = block->cell_at(i);
      for (std::size_t off : offsets) {
        if (off >= size) continue;  // 16-byte cells have fewer distinct offsets
        ASSERT_EQ(block->cell_start(cell + off), cell) << "class " << cls << " cell " << i << " offset " << off;
      }
    }
    // Header bytes and the unused tail map to no cell.
    const char* base = reinterpret_cast<const char*>(block);
    for (std::size_t off = 0; off < kBlockHeaderSize; off += 5) {
      EXPECT_EQ(block->cell_start(base + off), nullptr) << "header offset " << off;
    }
    EXPECT_EQ(block->cell_start(base + kBlockHeaderSize - 1), nullptr);
    for (const char* p = block->end(); p < base + kBlockSize; ++p) {
      ASSERT_EQ(block->cell_start(p), nullptr) << "class " << cls << " tail offset " << (p - base);
    }
  }
}

TEST_F(MarkedBlockTest, IsLiveCellFollowsTheLiveBitAndOnlyAcceptsCellStarts) {
  MarkedBlock* block = fresh_block(4, BlockState::kSwept);
  ASSERT_NE(block, nullptr);
  char* cell = block->cell_at(7);
  EXPECT_FALSE(block->is_live_cell(cell));
  block->live_bits().set(MarkedBlock::atom_of(cell));
  EXPECT_TRUE(block->is_live_cell(cell));
  EXPECT_FALSE(block->is_live_cell(cell + 16)) << "an interior pointer is not a cell start";
  EXPECT_FALSE(block->is_live_cell(block->cell_at(6)));
  EXPECT_EQ(block->live_cell_count(), 1u);
  EXPECT_EQ(block->live_cell_count() + block->free_cell_count(), block->cell_count());
  block->live_bits().clear(MarkedBlock::atom_of(cell));
  EXPECT_FALSE(block->is_live_cell(cell));
}

TEST_F(MarkedBlockTest, SetAllLiveMarksExactlyTheCells) {
  for (std::size_t cls = 0; cls < kNumSizeClasses; ++cls) {
    MarkedBlock* block = fresh_block(cls);
    ASSERT_NE(block, nullptr);
    block->set_all_live();
    EXPECT_EQ(block->live_cell_count(), block->cell_count()) << "class " << cls;
    EXPECT_EQ(block->free_cell_count(), 0u);
    std::vector<void*> visited;
    block->for_each_live_cell([&](void* cell) { visited.push_back(cell); });
    ASSERT_EQ(visited.size(), block->cell_count());
    for (std::size_t i = 0; i < visited.size(); ++i) EXPECT_EQ(visited[i], block->cell_at(i));
    block->check_invariants();  // aborts on failure
  }
}

// Parallel markers: threads race to mark every cell of a block that still
// carries an older version's marks (so the first marks also race to clear
// the bitmap). Each cell must be won by exactly one thread, and no mark of
// the new version may be lost to the clear.
TEST_F(MarkedBlockTest, SharedMarksAreWonOnceEachAndSurviveTheFirstMarksClear) {
  MarkedBlock* block = fresh_block(0);
  ASSERT_NE(block, nullptr);
  block->set_all_live();
  const std::size_t cells = block->cell_count();
  for (std::uint32_t version = 2; version < 102; ++version) {
    // Old marks on every other cell, from the version before.
    for (std::size_t i = 0; i < cells; i += 2) block->mark(block->cell_at(i), version - 1);
    constexpr int kThreads = 3;
    std::vector<std::size_t> won(kThreads, 0);
    std::atomic<int> ready{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        ready.fetch_add(1);
        while (ready.load() < kThreads) std::this_thread::yield();
        // All in the same order, so that they meet on the same cells.
        for (std::size_t i = 0; i < cells; ++i) {
          if (block->mark<AccessMode::kShared>(block->cell_at(i), version)) ++won[static_cast<std::size_t>(t)];
        }
      });
    }
    for (auto& thread : threads) thread.join();
    std::size_t total = 0;
    for (std::size_t w : won) total += w;
    EXPECT_EQ(total, cells) << "version " << version;
    EXPECT_EQ(block->mark_version(), version);
    for (std::size_t i = 0; i < cells; ++i) ASSERT_TRUE(block->is_marked(block->cell_at(i), version)) << i;
  }
}

std::vector<void*> dead_cells_seen;
void record_dead(void* cell) { dead_cells_seen.push_back(cell); }

// The marks policy: live &= marks for the sweep's version; marks of another
// version read as unmarked; on_dead only where destructible cells live.
TEST_F(MarkedBlockTest, SweepByMarksKeepsExactlyTheCellsMarkedWithItsVersion) {
  MarkedBlock* block = fresh_block(0, BlockState::kSweeping);
  ASSERT_NE(block, nullptr);
  block->set_all_live();
  const std::size_t cells = block->cell_count();
  for (std::size_t i = 0; i < cells; i += 3) block->mark(block->cell_at(i), 5);
  const std::size_t marked = (cells + 2) / 3;
  dead_cells_seen.clear();
  SweepCounts c = block->sweep(SweepByMarks{5, &record_dead});
  EXPECT_EQ(c.live_cells, marked);
  EXPECT_EQ(c.freed_cells, cells - marked);
  EXPECT_TRUE(dead_cells_seen.empty()) << "on_dead ran in a block with no destructible cell";
  for (std::size_t i = 0; i < cells; ++i) EXPECT_EQ(block->is_live_cell(block->cell_at(i)), i % 3 == 0) << i;

  block->note_destructible();
  c = block->sweep(SweepByMarks{6, &record_dead});  // version 6: nothing marked
  EXPECT_EQ(c.live_cells, 0u);
  EXPECT_EQ(c.freed_cells, marked);
  EXPECT_EQ(dead_cells_seen.size(), marked) << "on_dead once per dead cell";
  EXPECT_EQ(block->live_cell_count(), 0u);
  block->publish(block->state().with(BlockState::kEmpty));
  block->check_invariants();
}

// A predicate that throws mid-word: the cells judged dead before the throw
// are freed, the cell it threw on and every later one stay allocated.
TEST_F(MarkedBlockTest, SweepByAThrowingPredicateFreesOnlyTheCellsJudgedBeforeTheThrow) {
  MarkedBlock* block = fresh_block(0, BlockState::kSweeping);
  ASSERT_NE(block, nullptr);
  block->set_all_live();
  const std::size_t cells = block->cell_count();
  std::size_t calls = 0;
  auto drop_until_ten = [&](void*) -> bool {
    if (++calls == 11) throw std::runtime_error("predicate failed");
    return false;
  };
  EXPECT_THROW(block->sweep(SweepByPredicate{drop_until_ten}), std::runtime_error);
  EXPECT_EQ(block->live_cell_count(), cells - 10);
  for (std::size_t i = 0; i < cells; ++i) EXPECT_EQ(block->is_live_cell(block->cell_at(i)), i >= 10) << i;
  block->publish(block->state().with(BlockState::kSwept));
  block->check_invariants();
}

TEST_F(MarkedBlockTest, SweepFreesExactlyTheCellsThePredicateRejects) {
  MarkedBlock* block = fresh_block(1, BlockState::kSweeping);
  ASSERT_NE(block, nullptr);
  block->set_all_live();
  std::size_t calls = 0;
  auto keep_even = [&](void* cell) {
    ++calls;
    const std::size_t index = static_cast<std::size_t>(static_cast<char*>(cell) - block->begin()) / block->cell_size();
    EXPECT_EQ(block->cell_at(index), cell) << "predicate got a non-cell pointer";
    return index % 2 == 0;
  };
  const SweepCounts counts = block->sweep(SweepByPredicate{keep_even});
  EXPECT_EQ(calls, block->cell_count()) << "one call per allocated cell";
  EXPECT_EQ(counts.live_cells, (block->cell_count() + 1) / 2);
  EXPECT_EQ(counts.freed_cells, block->cell_count() / 2);
  EXPECT_EQ(block->live_cell_count(), counts.live_cells);
  for (std::size_t i = 0; i < block->cell_count(); ++i) {
    EXPECT_EQ(block->is_live_cell(block->cell_at(i)), i % 2 == 0) << "cell " << i;
  }
  // Sweeping again only visits the survivors.
  calls = 0;
  auto keep_all = [&](void*) { ++calls; return true; };
  const SweepCounts again = block->sweep(SweepByPredicate{keep_all});
  EXPECT_EQ(calls, counts.live_cells);
  EXPECT_EQ(again.freed_cells, 0u);
  block->publish(block->state().with(BlockState::kSwept));
  block->check_invariants();
}

// The interleaved layout (atom_bitmap.h): mark word w and live word w on
// one cache line, every word of the two bitmaps in its own slot of the
// header, after its first line (the state word, scalars and cards).
TEST_F(MarkedBlockTest, MarkWordAndLiveWordShareACacheLine) {
  MarkedBlock* block = fresh_block(0);
  ASSERT_NE(block, nullptr);
  const std::uintptr_t base = address(block);
  std::set<std::uintptr_t> slots;
  for (std::size_t w = 0; w < AtomBitmap::kWords; ++w) {
    const std::uintptr_t mark = address(block->mark_bits().word_address(w));
    const std::uintptr_t live = address(block->live_bits().word_address(w));
    EXPECT_EQ(mark / 64, live / 64) << "word " << w << ": mark at +" << mark - base << ", live at +" << live - base;
    for (const std::uintptr_t a : {mark, live}) {
      EXPECT_GE(a - base, 64u) << "word " << w << " in the header's first line";
      EXPECT_LE(a - base + sizeof(std::uint64_t), kBlockHeaderSize) << "word " << w << " past the header";
      EXPECT_TRUE(slots.insert(a).second) << "word " << w << " shares its slot";
    }
  }
}

// The marker prefetches MarkedBlock::bitmap_line_of(p) before it checks and
// marks p (collector/src/marker.cpp, the visit queue): it must be the line of
// p's mark word and live word, for every atom of the block.
TEST_F(MarkedBlockTest, BitmapLineOfIsTheLineOfEachAtomsMarkAndLiveWords) {
  MarkedBlock* block = fresh_block(0);
  ASSERT_NE(block, nullptr);
  const std::uintptr_t base = address(block);
  for (std::size_t atom = 0; atom < kAtomsPerBlock; ++atom) {
    const void* p = reinterpret_cast<const void*>(base + atom * kAtomSize + kAtomSize / 2);
    const std::uintptr_t mark = address(block->mark_bits().word_address(atom / 64));
    const std::uintptr_t live = address(block->live_bits().word_address(atom / 64));
    ASSERT_EQ(MarkedBlock::bitmap_line_of(p), mark & ~std::uintptr_t{63}) << "atom " << atom;
    ASSERT_EQ(MarkedBlock::bitmap_line_of(p), live & ~std::uintptr_t{63}) << "atom " << atom;
    ASSERT_EQ(MarkedBlock::version_line_of(p), base) << "atom " << atom;
  }
}

// Every bit of either bitmap is its own: setting it shows in that bitmap's
// word, at that bit, and nowhere in the other bitmap.
TEST_F(MarkedBlockTest, MarkAndLiveBitsAreIndependentPerBit) {
  MarkedBlock* block = fresh_block(0);
  ASSERT_NE(block, nullptr);
  for (const bool marks : {true, false}) {
    for (std::size_t atom = 0; atom < kAtomsPerBlock; ++atom) {
      AtomBitmap set = marks ? block->mark_bits() : block->live_bits();
      const AtomBitmap other = marks ? block->live_bits() : block->mark_bits();
      set.set(atom);
      for (std::size_t w = 0; w < AtomBitmap::kWords; ++w) {
        const std::uint64_t expected = w == atom / 64 ? std::uint64_t{1} << (atom % 64) : 0;
        ASSERT_EQ(set.word(w), expected) << (marks ? "marks" : "live") << ": atom " << atom << ", word " << w;
        ASSERT_EQ(other.word(w), 0u) << (marks ? "marks" : "live") << ": atom " << atom << " leaked into word " << w;
      }
      ASSERT_TRUE(set.get(atom));
      ASSERT_EQ(set.count(), 1u);
      set.clear(atom);
      ASSERT_EQ(set.count(), 0u) << "atom " << atom;
    }
  }
}

// Sweep by marks, a word at a time: live &= marks in every word, with
// patterns that differ in each word of both bitmaps.
TEST_F(MarkedBlockTest, SweepByMarksKeepsExactlyTheMarkedLiveCellsInEveryWord) {
  MarkedBlock* block = fresh_block(0, BlockState::kSweeping);
  ASSERT_NE(block, nullptr);
  std::uint64_t rng = 0x9E3779B97F4A7C15u;
  auto next = [&] { return rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17; };
  std::vector<bool> live(block->cell_count());
  std::vector<bool> marked(block->cell_count());
  for (std::size_t i = 0; i < block->cell_count(); ++i) {
    live[i] = next() % 3 != 0;
    marked[i] = next() % 2 == 0;
    if (live[i]) block->live_bits().set(MarkedBlock::atom_of(block->cell_at(i)));
  }
  constexpr std::uint32_t kVersion = 7;
  for (std::size_t i = 0; i < block->cell_count(); ++i) {
    if (marked[i]) block->mark(block->cell_at(i), kVersion);
  }
  std::size_t kept = 0;
  std::size_t freed = 0;
  for (std::size_t i = 0; i < block->cell_count(); ++i) {
    kept += live[i] && marked[i];
    freed += live[i] && !marked[i];
  }
  const SweepCounts counts = block->sweep(SweepByMarks{kVersion, nullptr});
  EXPECT_EQ(counts.live_cells, kept);
  EXPECT_EQ(counts.freed_cells, freed);
  for (std::size_t i = 0; i < block->cell_count(); ++i) {
    ASSERT_EQ(block->is_live_cell(block->cell_at(i)), live[i] && marked[i]) << "cell " << i;
    ASSERT_EQ(block->is_marked(block->cell_at(i), kVersion), marked[i]) << "the sweep changed the mark of cell " << i;
  }
}

// A block none of whose cells was marked in the sweep's cycle (its marks
// are of an older version) is freed whole without a judge call per word
// (MarkedBlock::sweep_all_dead): in every class, whatever the pattern of
// allocated cells, the counts are exact and no live bit is left, the last
// word's included; the old marks are not the sweep's to change.
TEST_F(MarkedBlockTest, SweepOfAWhollyUnmarkedBlockFreesEveryAllocatedCellInEveryClass) {
  std::uint64_t rng = 0xD1B54A32D192ED03u;
  auto next = [&] { return rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17; };
  constexpr std::uint32_t kOld = 3;
  for (std::size_t cls = 0; cls < kNumSizeClasses; ++cls) {
    MarkedBlock* block = fresh_block(cls, BlockState::kSweeping);
    ASSERT_NE(block, nullptr);
    std::size_t allocated = 0;
    for (std::size_t i = 0; i < block->cell_count(); ++i) {
      // The last cell always, so the bitmap's last word with a cell is tested.
      if (i + 1 != block->cell_count() && next() % 4 == 0) continue;
      block->live_bits().set(MarkedBlock::atom_of(block->cell_at(i)));
      ++allocated;
      if (next() % 2 == 0) block->mark(block->cell_at(i), kOld);
    }
    const SweepCounts counts = block->sweep(SweepByMarks{kOld + 1, &record_dead});
    EXPECT_EQ(counts.live_cells, 0u) << "class " << cls;
    EXPECT_EQ(counts.freed_cells, allocated) << "class " << cls;
    for (std::size_t w = 0; w < AtomBitmap::kWords; ++w) {
      EXPECT_EQ(block->live_bits().word(w), 0u) << "class " << cls << " live word " << w;
    }
    EXPECT_EQ(block->mark_version(), kOld) << "class " << cls;
    block->publish(block->state().with(BlockState::kEmpty));
    block->check_invariants();
  }
}

// The whole-block path is only for stale marks: a block with marks of the
// sweep's version, even none of them on an allocated cell, and a block with
// destructible cells, take the judged loop (on_dead runs once per cell).
TEST_F(MarkedBlockTest, SweepOfAnUnmarkedBlockStillVisitsDestructibleCells) {
  MarkedBlock* block = fresh_block(2, BlockState::kSweeping);
  ASSERT_NE(block, nullptr);
  block->set_all_live();
  block->note_destructible();
  dead_cells_seen.clear();
  const SweepCounts counts = block->sweep(SweepByMarks{4, &record_dead});
  EXPECT_EQ(counts.freed_cells, block->cell_count());
  ASSERT_EQ(dead_cells_seen.size(), block->cell_count());
  for (std::size_t i = 0; i < block->cell_count(); ++i) EXPECT_EQ(dead_cells_seen[i], block->cell_at(i)) << i;
  EXPECT_EQ(block->live_cell_count(), 0u);
}

// What mark_unswept asks before making a block UNSWEPT: would a sweep by
// marks free nothing? Stale marks read as unmarked; the answer depends on
// every word, the last cell's included.
TEST_F(MarkedBlockTest, AllLiveMarkedIsTrueExactlyWhenNoAllocatedCellIsUnmarked) {
  MarkedBlock* block = fresh_block(0, BlockState::kFull);
  ASSERT_NE(block, nullptr);
  constexpr std::uint32_t kVersion = 9;
  const std::size_t last = block->cell_count() - 1;
  EXPECT_TRUE(block->all_live_marked(kVersion)) << "nothing allocated, stale marks";
  block->live_bits().set(MarkedBlock::atom_of(block->cell_at(last)));
  EXPECT_FALSE(block->all_live_marked(kVersion)) << "an allocated cell under stale marks";
  block->mark(block->cell_at(last), kVersion);
  EXPECT_TRUE(block->all_live_marked(kVersion));
  EXPECT_FALSE(block->all_live_marked(kVersion + 1)) << "the marks are stale for the next version";
  block->set_all_live();
  EXPECT_FALSE(block->all_live_marked(kVersion)) << "only the last cell is marked";
  for (std::size_t i = 0; i < last; ++i) block->mark(block->cell_at(i), kVersion);
  EXPECT_TRUE(block->all_live_marked(kVersion));
}

TEST(BlockStateWord, PackUnpackRoundTrip) {
  const BlockStateWord w{0xDEADBEEF, 0x123456, BlockState::kSweeping};
  EXPECT_EQ(BlockStateWord::unpack(w.pack()), w);
  const BlockStateWord big_owner{7, 0xFFFFFFFF, BlockState::kOwned};
  EXPECT_EQ(BlockStateWord::unpack(big_owner.pack()).owner, BlockStateWord::kOwnerMask) << "owner is 24 bits";
  EXPECT_EQ(BlockStateWord::unpack(big_owner.pack()).generation, 7u);
  const BlockStateWord moved = w.with(BlockState::kSwept);
  EXPECT_EQ(moved.generation, w.generation);
  EXPECT_EQ(moved.owner, 0u);
  EXPECT_EQ(moved.state, BlockState::kSwept);
}

TEST(BlockStateWord, ZeroBytesDecodeAsPooledGenerationZero) {
  const BlockStateWord zero = BlockStateWord::unpack(0);
  EXPECT_EQ(zero.state, BlockState::kPooled);
  EXPECT_EQ(zero.generation, 0u);
  EXPECT_EQ(zero.owner, 0u);
  EXPECT_EQ(static_cast<int>(BlockState::kPooled), 0);
}

TEST(BlockStateWord, EveryStateHasADistinctName) {
  std::set<std::string> names;
  for (int s = 0; s <= static_cast<int>(BlockState::kRetired); ++s) {
    const std::string name = block_state_name(static_cast<BlockState>(s));
    EXPECT_NE(name, "invalid");
    names.insert(name);
  }
  EXPECT_EQ(names.size(), static_cast<std::size_t>(BlockState::kRetired) + 1);
  EXPECT_STREQ(block_state_name(static_cast<BlockState>(200)), "invalid");
}

TEST_F(MarkedBlockTest, TryTransitionIsOneCasOnTheWholeWord) {
  MarkedBlock* block = fresh_block(0, BlockState::kSwept);
  ASSERT_NE(block, nullptr);
  const BlockStateWord seen = block->state();
  EXPECT_FALSE(block->try_transition(seen.with(BlockState::kEmpty), seen.with(BlockState::kOwned, 5)))
      << "wrong state";
  BlockStateWord stale = seen;
  stale.generation += 1;
  EXPECT_FALSE(block->try_transition(stale, stale.with(BlockState::kOwned, 5))) << "wrong generation";
  EXPECT_EQ(block->state(), seen);
  EXPECT_TRUE(block->try_transition(seen, seen.with(BlockState::kOwned, 5)));
  EXPECT_EQ(block->state().owner, 5u);
  EXPECT_FALSE(block->try_transition(seen, seen.with(BlockState::kOwned, 6))) << "lost race must fail";
}

using MarkedBlockDeathTest = MarkedBlockTest;

TEST_F(MarkedBlockDeathTest, CheckInvariantsAbortsOnALiveBitInsideACell) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  MarkedBlock* block = fresh_block(2, BlockState::kSwept);  // 48-byte cells: 3 atoms each
  ASSERT_NE(block, nullptr);
  block->live_bits().set(MarkedBlock::atom_of(block->cell_at(0)) + 1);
  EXPECT_DEATH(block->check_invariants(), "does not start a cell");
  block->live_bits().clear_all();
}

TEST_F(MarkedBlockDeathTest, CheckInvariantsAbortsOnAnEmptyBlockWithLiveCells) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  MarkedBlock* block = fresh_block(0, BlockState::kEmpty);
  ASSERT_NE(block, nullptr);
  block->live_bits().set(MarkedBlock::atom_of(block->cell_at(3)));
  EXPECT_DEATH(block->check_invariants(), "empty block has live cells");
}

}  // namespace
}  // namespace handoff
