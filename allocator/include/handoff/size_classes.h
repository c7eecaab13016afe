// Block geometry and size classes, all computed at compile time.
//
// Classes: 16..80 in steps of 16, then a ~1.4x progression rounded up to 16
// bytes, up to about 8 KiB. Each class is then "nudged": raised to the
// largest multiple of 16 that still fits the same number of cells in a
// block's payload, so the tail of the block wastes less than one atom.
// Requests above the largest class go to the large-object space.
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

constexpr SizeClassTable make_size_classes() {
  SizeClassTable table;
  for (std::size_t s = 16; s <= 80; s += 16) table.size[table.count++] = static_cast<std::uint32_t>(s);
  double progression = 80.0;
  for (;;) {
    progression *= 1.4;
    const std::size_t size = nudge(round_up_atom(static_cast<std::size_t>(progression)));
    if (size > 8192) break;
    if (size > table.size[table.count - 1]) table.size[table.count++] = static_cast<std::uint32_t>(size);
    progression = static_cast<double>(size);
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
