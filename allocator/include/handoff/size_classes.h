// Block geometry and size classes, all computed at compile time.
//
// Classes: 16..80 in steps of 16, then each next class is the largest size
// that keeps the slop bound below for every request it serves. Among the
// candidates we prefer a *nudged* size: the largest multiple of 16 that fits
// a given number of cells in a block's payload, so the block's tail wastes
// less than one atom per cell. When no nudged size lies between the previous
// class and the bound, the bound itself (rounded down to 16) is used
// unnudged. The growth is about 1.4x per class up to about 8 KiB; requests
// above the largest class go to the large-object space.
//
// Slop bound, as an equation checked in tests:
//   for every size s in 1..kMaxSmallSize:  s <= class_size(s) < 1.4*s + 16
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace handoff {

inline constexpr std::size_t kBlockSize = 16 * 1024;
inline constexpr std::size_t kAtomSize = 16;
inline constexpr std::size_t kAtomsPerBlock = kBlockSize / kAtomSize;
// Header bytes at the start of every block (state word, scalars, two
// bitmaps); marked_block.h static_asserts that the header fits.
inline constexpr std::size_t kBlockHeaderSize = 320;
inline constexpr std::size_t kBlockPayloadSize = kBlockSize - kBlockHeaderSize;
inline constexpr std::size_t kMaxSizeClasses = 32;

namespace detail {

struct SizeClassTable {
  std::array<std::uint32_t, kMaxSizeClasses> size{};
  std::size_t count = 0;
};

constexpr std::size_t round_up_atom(std::size_t n) { return (n + kAtomSize - 1) & ~(kAtomSize - 1); }

constexpr std::size_t nudge(std::size_t size) {
  const std::size_t cells = kBlockPayloadSize / size;
  return (kBlockPayloadSize / cells) & ~(kAtomSize - 1);
}

// Largest class size allowed after `previous`: at most 1.4x the smallest
// request it serves (previous + 1), rounded down to 16. That step keeps the
// stated bound (< 1.4*s + 16) with the +16 to spare for rounding.
constexpr std::size_t bound_after(std::size_t previous) {
  return ((14 * (previous + 1)) / 10) & ~(kAtomSize - 1);
}

// Largest nudged size (payload / cells, rounded down to 16) <= bound.
constexpr std::size_t largest_nudged_at_most(std::size_t bound) {
  for (std::size_t cells = 1;; ++cells) {
    const std::size_t size = (kBlockPayloadSize / cells) & ~(kAtomSize - 1);
    if (size <= bound) return size;
  }
}

constexpr SizeClassTable make_size_classes() {
  SizeClassTable table;
  for (std::size_t s = 16; s <= 80; s += 16) table.size[table.count++] = static_cast<std::uint32_t>(s);
  for (;;) {
    const std::size_t previous = table.size[table.count - 1];
    const std::size_t bound = bound_after(previous);
    std::size_t next = largest_nudged_at_most(bound);
    if (next <= previous) next = bound;
    if (next > 8192) break;
    table.size[table.count++] = static_cast<std::uint32_t>(next);
  }
  return table;
}

inline constexpr SizeClassTable kSizeClasses = make_size_classes();

}  // namespace detail

inline constexpr std::size_t kNumSizeClasses = detail::kSizeClasses.count;
inline constexpr std::size_t kMaxSmallSize = detail::kSizeClasses.size[kNumSizeClasses - 1];

namespace detail {

// index_of[(size + 15) / 16] -> class index, for 1 <= size <= kMaxSmallSize.
constexpr auto make_class_index() {
  std::array<std::uint8_t, kMaxSmallSize / kAtomSize + 1> index{};
  std::size_t cls = 0;
  for (std::size_t atoms = 1; atoms < index.size(); ++atoms) {
    while (kSizeClasses.size[cls] < atoms * kAtomSize) ++cls;
    index[atoms] = static_cast<std::uint8_t>(cls);
  }
  return index;
}

inline constexpr auto kClassIndex = make_class_index();

}  // namespace detail

// Size of class `cls` in bytes.
constexpr std::size_t class_size(std::size_t cls) { return detail::kSizeClasses.size[cls]; }

// Cells of class `cls` in one block.
constexpr std::size_t cells_per_block(std::size_t cls) { return kBlockPayloadSize / class_size(cls); }

// Class for a request of `size` bytes. Precondition: 1 <= size <= kMaxSmallSize.
constexpr std::size_t size_class_of(std::size_t size) {
  return detail::kClassIndex[(size + kAtomSize - 1) / kAtomSize];
}

static_assert(class_size(0) == 16 && class_size(4) == 80, "16..80 step 16");
static_assert(kMaxSmallSize >= 7 * 1024 && kMaxSmallSize <= 8 * 1024, "largest class about 8 KiB");
static_assert(kNumSizeClasses <= 255, "class index fits a byte");

}  // namespace handoff
