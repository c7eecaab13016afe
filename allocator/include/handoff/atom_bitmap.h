// One bit per 16-byte atom of a block. Used for the mark bits and the live
// (allocated) bits. Every word is a std::atomic so that a reader on another
// thread (a conservative root lookup, the stats walker) never races with a
// writer in the TSan sense; the access mode at the call site says whether the
// writer is exclusive (kExclusive: load + store, no read-modify-write) or may
// share the word with other writers (kShared: fetch_or / fetch_and).
//
// Layout: a block's two bitmaps are interleaved word by word
// (BlockBitmaps): mark word w and live word w form a 16-byte pair, and four
// pairs fill a 64-byte line:
//
//   line g:  | mark 4g | live 4g | mark 4g+1 | live 4g+1 | ... | mark 4g+3 | live 4g+3 |
//
// so mark word w and live word w always share a line. Why: the marker
// checks every target's live bit before it sets its mark bit
// (collector/src/mark_target.cpp); with the bitmaps one after the other
// that check was a second cache miss per edge into a cold block, and it
// doubled the mark time of heaps whose edges mostly land in cold blocks.
// Why pairs rather than four mark words then four live words per line:
// the same locality, and cheaper addressing. Word i of either bitmap is
// 16 * i bytes from that bitmap's first word: a shift and an add from the
// word index, one instruction more than a plain array. Groups of four need
// three more than that per access (3% more instructions in
// bench_mark_pause's mark loop under cachegrind). AtomBitmap is a view of
// one of the two bitmaps. The bits stay independent (one atomic word per
// 64 atoms of one bitmap), and a pass over a bitmap is still a loop over
// its words in atom order.
#pragma once

#include <handoff/bit_count.h>
#include <handoff/size_classes.h>

#include <array>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>

namespace handoff {

enum class AccessMode { kExclusive, kShared };

class BlockBitmaps;

class AtomBitmap {
 public:
  static constexpr std::size_t kWords = kAtomsPerBlock / 64;
  using Words = std::array<std::uint64_t, kWords>;

  bool get(std::size_t atom) const noexcept {
    return (slot(atom / 64).load(std::memory_order_relaxed) >> (atom % 64)) & 1;
  }

  template <AccessMode M = AccessMode::kExclusive>
  void set(std::size_t atom) noexcept {
    const std::uint64_t bit = std::uint64_t{1} << (atom % 64);
    auto& word = slot(atom / 64);
    if constexpr (M == AccessMode::kShared) {
      word.fetch_or(bit, std::memory_order_relaxed);
    } else {
      word.store(word.load(std::memory_order_relaxed) | bit, std::memory_order_relaxed);
    }
  }

  // Sets the bit; true if it was clear. kShared: one fetch_or, so of two
  // threads that race to set it exactly one sees it clear.
  template <AccessMode M = AccessMode::kExclusive>
  bool test_and_set(std::size_t atom) noexcept {
    const std::uint64_t bit = std::uint64_t{1} << (atom % 64);
    auto& word = slot(atom / 64);
    if constexpr (M == AccessMode::kShared) {
      return (word.fetch_or(bit, std::memory_order_relaxed) & bit) == 0;
    } else {
      const std::uint64_t old = word.load(std::memory_order_relaxed);
      if ((old & bit) != 0) return false;
      word.store(old | bit, std::memory_order_relaxed);
      return true;
    }
  }

  template <AccessMode M = AccessMode::kExclusive>
  void clear(std::size_t atom) noexcept {
    const std::uint64_t bit = std::uint64_t{1} << (atom % 64);
    auto& word = slot(atom / 64);
    if constexpr (M == AccessMode::kShared) {
      word.fetch_and(~bit, std::memory_order_relaxed);
    } else {
      word.store(word.load(std::memory_order_relaxed) & ~bit, std::memory_order_relaxed);
    }
  }

  std::uint64_t word(std::size_t i) const noexcept { return slot(i).load(std::memory_order_relaxed); }
  void set_word(std::size_t i, std::uint64_t v) noexcept { slot(i).store(v, std::memory_order_relaxed); }

  void assign(const Words& words) noexcept {
    for (std::size_t i = 0; i < kWords; ++i) set_word(i, words[i]);
  }
  void clear_all() noexcept {
    for (std::size_t i = 0; i < kWords; ++i) set_word(i, 0);
  }
  // Where logical word i lives (the layout test; nothing dereferences it).
  const void* word_address(std::size_t i) const noexcept { return &slot(i); }
  std::size_t count() const noexcept {
    std::size_t n = 0;
    for (std::size_t i = 0; i < kWords; ++i) n += bit_count(word(i));  // popcnt where the CPU has it
    return n;
  }

 private:
  friend class BlockBitmaps;
  explicit AtomBitmap(std::atomic<std::uint64_t>* first) noexcept : first_(first) {}

  // Word i of this bitmap: slot 2 i from its first word (the other bitmap's
  // word i is its neighbour).
  std::atomic<std::uint64_t>& slot(std::size_t i) const noexcept { return first_[2 * i]; }

  std::atomic<std::uint64_t>* first_;  // this bitmap's word 0 in its BlockBitmaps
};

// The storage of a block's mark and live bitmaps, interleaved word by word
// (the layout above). A member of MarkedBlock; views of it are handed out
// by MarkedBlock::mark_bits() and live_bits(); a view of a const block is a
// const AtomBitmap, which only reads.
class alignas(64) BlockBitmaps {
 public:
  static constexpr std::size_t kLines = 2 * AtomBitmap::kWords * sizeof(std::uint64_t) / 64;

  AtomBitmap marks() const noexcept { return AtomBitmap(first(0)); }
  AtomBitmap live() const noexcept { return AtomBitmap(first(1)); }

 private:
  std::atomic<std::uint64_t>* first(std::size_t i) const noexcept {
    return const_cast<std::atomic<std::uint64_t>*>(&slots_[i]);  // constness is the MarkedBlock accessor's
  }

  std::array<std::atomic<std::uint64_t>, 2 * AtomBitmap::kWords> slots_{};
};

static_assert(sizeof(BlockBitmaps) == BlockBitmaps::kLines * 64, "whole lines of mark and live word pairs");

namespace detail {

inline constexpr std::size_t kFirstCellAtom = kBlockHeaderSize / kAtomSize;

// Atoms that start a cell, per size class: the live bitmap of a full block.
constexpr AtomBitmap::Words make_cell_start_mask(std::size_t cls) {
  AtomBitmap::Words mask{};
  const std::size_t atoms_per_cell = class_size(cls) / kAtomSize;
  for (std::size_t i = 0; i < cells_per_block(cls); ++i) {
    const std::size_t atom = kFirstCellAtom + i * atoms_per_cell;
    mask[atom / 64] |= std::uint64_t{1} << (atom % 64);
  }
  return mask;
}

constexpr auto make_cell_start_masks() {
  std::array<AtomBitmap::Words, kNumSizeClasses> masks{};
  for (std::size_t cls = 0; cls < kNumSizeClasses; ++cls) masks[cls] = make_cell_start_mask(cls);
  return masks;
}

inline constexpr auto kCellStartMasks = make_cell_start_masks();

}  // namespace detail
}  // namespace handoff
