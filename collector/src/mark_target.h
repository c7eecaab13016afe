// The marker's target check, inline part (the design: mark_target.cpp).
#pragma once

#include "marker.h"

namespace handoff::detail {

// A live block cell of this heap: its block; a large object of this heap:
// nullptr; anything else: an abort naming it.
inline MarkedBlock* Marker::checked_target(const void* cell) {
  const auto address = reinterpret_cast<std::uintptr_t>(cell);
  const CachedChunk& cached = cached_chunk_for(address);
  if (address - cached.base >= kChunkSize) [[unlikely]] return checked_target_slow(cell);
  // A block the pool holds (cached, purged) is never read: it may be
  // poisoned, or its pages dropped.
  if (cached.chunk->in_use[(address - cached.base) / kBlockSize].load(std::memory_order_acquire) == 1) {
    // Live bits sit only on cell starts (MarkedBlock::check_invariants), so
    // an atom-aligned address with its live bit set is a live cell's start.
    MarkedBlock* block = MarkedBlock::of(cell);
    if ((address & (kAtomSize - 1)) == 0 && block->live_bits().get(MarkedBlock::atom_of(cell))) [[likely]] {
      return block;
    }
  }
  report_foreign_target(cell);
}

}  // namespace handoff::detail
