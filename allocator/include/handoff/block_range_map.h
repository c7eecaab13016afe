// Which parts of the address space hold marked blocks, and where a block
// keeps its cards: the two facts the collector's write barrier needs, kept
// in the allocator because the block pool maintains the first and the block
// header holds the second.
//
//   block_range_map[a >> 22] == 1  <=>  a lies in a 4 MiB chunk that a block
//                                       pool of this process has reserved
//
// One byte per chunk over the 47-bit user address space is 32 MiB of zero
// bss; a page of it is touched only when a chunk in its 16 GiB of address
// space is reserved, so a process pays 4 KiB per such region. Entries are
// written by the pools (ChunkMap in block_pool.cpp) with relaxed stores and
// read with relaxed loads: a thread that holds a pointer into a block got it
// through an allocation or a published object, both of which happen after
// the pool's store, so it reads 1; a pointer to any other memory (a stack, a
// malloc'd struct) reads 0 and the barrier leaves it alone.
//
// Cards: each block header holds kCardsPerBlock bytes at kCardTableOffset,
// one per kCardSize bytes of the block. The barrier sets a card to 1 when it
// stores a reference into that part of the block; the collector reads and
// clears the cards with the world stopped (collector/src/remembered_set.cpp).
#pragma once

#include <handoff/size_classes.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace handoff::detail {

inline constexpr unsigned kRangeMapShift = 22;  // log2 of the pool's chunk size
inline constexpr std::size_t kRangeMapSize = std::size_t{1} << (47 - kRangeMapShift);
extern std::atomic<std::uint8_t> block_range_map[kRangeMapSize];

inline constexpr unsigned kCardShift = 10;
inline constexpr std::size_t kCardSize = std::size_t{1} << kCardShift;
inline constexpr std::size_t kCardsPerBlock = kBlockSize / kCardSize;
inline constexpr std::size_t kCardTableOffset = 48;  // checked against MarkedBlock in marked_block.cpp

inline bool in_block_range(std::uintptr_t address) noexcept {
  const std::uintptr_t index = address >> kRangeMapShift;
  return index < kRangeMapSize && block_range_map[index].load(std::memory_order_relaxed) != 0;
}

// The card byte covering `address`, which must lie in a block.
inline std::atomic<std::uint8_t>& card_of(std::uintptr_t address) noexcept {
  const std::uintptr_t block = address & ~(std::uintptr_t{kBlockSize} - 1);
  const std::uintptr_t index = (address & (kBlockSize - 1)) >> kCardShift;
  return *reinterpret_cast<std::atomic<std::uint8_t>*>(block + kCardTableOffset + index);
}

}  // namespace handoff::detail
