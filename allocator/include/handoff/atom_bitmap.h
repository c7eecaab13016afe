// One bit per 16-byte atom of a block. Used for the mark bits and the live
// (allocated) bits. Every word is a std::atomic so that a reader on another
// thread (a conservative root lookup, the stats walker) never races with a
// writer in the TSan sense; the access mode at the call site says whether the
// writer is exclusive (kExclusive: load + store, no read-modify-write) or may
// share the word with other writers (kShared: fetch_or / fetch_and).
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

class AtomBitmap {
 public:
  static constexpr std::size_t kWords = kAtomsPerBlock / 64;
  using Words = std::array<std::uint64_t, kWords>;

  bool get(std::size_t atom) const noexcept {
    return (words_[atom / 64].load(std::memory_order_relaxed) >> (atom % 64)) & 1;
  }

  template <AccessMode M = AccessMode::kExclusive>
  void set(std::size_t atom) noexcept {
    const std::uint64_t bit = std::uint64_t{1} << (atom % 64);
    auto& word = words_[atom / 64];
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
    auto& word = words_[atom / 64];
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
    auto& word = words_[atom / 64];
    if constexpr (M == AccessMode::kShared) {
      word.fetch_and(~bit, std::memory_order_relaxed);
    } else {
      word.store(word.load(std::memory_order_relaxed) & ~bit, std::memory_order_relaxed);
    }
  }

  std::uint64_t word(std::size_t i) const noexcept { return words_[i].load(std::memory_order_relaxed); }
  void set_word(std::size_t i, std::uint64_t v) noexcept { words_[i].store(v, std::memory_order_relaxed); }

  void assign(const Words& words) noexcept {
    for (std::size_t i = 0; i < kWords; ++i) set_word(i, words[i]);
  }
  void clear_all() noexcept {
    for (auto& w : words_) w.store(0, std::memory_order_relaxed);
  }
  std::size_t count() const noexcept {
    std::size_t n = 0;
    for (const auto& w : words_) n += bit_count(w.load(std::memory_order_relaxed));  // popcnt where the CPU has it
    return n;
  }

 private:
  std::array<std::atomic<std::uint64_t>, kWords> words_{};
};

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
