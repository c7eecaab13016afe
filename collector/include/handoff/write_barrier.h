// The generational write barrier (papers/collector.md, "Generations").
//
// An eden collection traces only objects allocated since the last
// collection; objects that survived one keep their mark ("sticky" marks,
// JavaScriptCore's Eden collection) and are not traced again. That is sound
// only if every reference from an old object to a new one is found some
// other way (invariant 8): each store of a heap reference into a heap
// object sets the card covering the stored-to slot, and an eden collection
// traces the marked objects that overlap a set card before it marks
// anything else.
//
// The barrier is card marking over the slot's own block: it needs no owner
// pointer and no test of the target's age. Member assignment runs it;
// Member construction does not (a new object is traced anyway), and an
// object that a collection found still under construction, which may be
// old by the time its constructor stores more fields, is rescanned by every
// eden collection until one finds it constructed (remembered_set.cpp).
//
//   fast path:  in_block_range(slot)?  one byte load from a process-wide map
//               card already set?      one byte load from the block header
//               set it                 one plain byte store (no RMW, no lock)
//
// A slot outside every block (a Member on the stack, in a malloc'd struct or
// in a large object) reads 0 in the range map and writes nothing. Large
// objects carry no cards: an eden collection traces every marked large
// object whose type has a trace function (remembered_set.cpp).
//
// Concurrency: the card bytes are std::atomic<std::uint8_t> written with
// relaxed stores by any number of mutators (two threads setting the same
// card both store 1); the collector reads and clears them with the world
// stopped, ordered after the mutators' stores by the stop-the-world
// handshake's mutex (heap_internals.h). ThreadSanitizer sees every access.
#pragma once

#include <handoff/block_range_map.h>
#include <handoff/sanitizer.h>

#include <atomic>
#include <cstdint>

namespace handoff {

// Records that a heap reference was stored at `slot`. Member assignment
// calls it; call it yourself after storing a heap pointer into a field that
// trace() reports with Visitor::trace_raw. Harmless for any address.
HANDOFF_ALWAYS_INLINE void write_barrier(const void* slot) noexcept {
  const auto address = reinterpret_cast<std::uintptr_t>(slot);
  if (!detail::in_block_range(address)) return;
  std::atomic<std::uint8_t>& card = detail::card_of(address);
  // Racy by design: two threads may both see 0 and both store 1.
  if (card.load(std::memory_order_relaxed) == 0) card.store(1, std::memory_order_relaxed);
}

}  // namespace handoff
