// The marker: stop-the-world marking with an explicit mark stack.
//
// Call tree (world stopped, concurrent sweeper paused, heap mutex held):
//   HeapInternals::run_collection
//     -> Marker::mark_roots         stacks + registers (conservative),
//                                   Root handles, finalizer queue (precise)
//     -> Marker::drain              pop, trace (TypeInfo::trace) or scan an
//                                   object still under construction
//     -> HeapInternals::process_weak_and_finalizable -> Marker::drain again
//
// Marks are versioned (MarkedBlock::mark, LargeObjectSpace::mark): a cell is
// marked for this collection iff its block's mark version is the current
// one and its bit is set, so no bitmap is cleared in a pass over the heap.
//
// Conservative lookup (invariant 7). A word marks a cell only if the word
// points into a block the pool has handed out, inside a cell whose live bit
// is set, or into a published large object. With the world stopped every
// block's live bits are exact: threads handed their current blocks back, the
// previous lazy sweep was finished before marking, and no block is OWNED,
// UNSWEPT or being swept. Blocks retired into the limbo are EMPTY (no live
// bit), and nothing is freed while the sweeper is paused, so a lookup never
// reads a block that may be freed concurrently.
//
// Generations (remembered_set.cpp): an eden collection keeps the version,
// so old objects stay marked and try_mark stops at them; it first traces
// the remembered set, then marks from the roots as a full collection does.
//
// The verifier (verifier.cpp) reuses the root enumeration and lookup with
// its own visited set instead of mark bits, then checks that everything it
// reached carries the collector's mark.
#pragma once

#include "heap_internals.h"

#include <handoff/ephemeron.h>

#include <algorithm>
#include <cstdint>
#include <unordered_set>
#include <utility>
#include <vector>

namespace handoff::detail {

class Marker final : public Visitor {
 public:
  enum class Mode { kMark, kVerify };

  Marker(HeapInternals& heap, Mode mode);

  void mark_roots();
  // Eden collections, before mark_roots: traces the old objects that may
  // reference new ones (remembered_set.cpp).
  void trace_remembered();
  void drain();
  // Marks and queues `object` (the start of a live object).
  void visit(const void* object) override;
  void visit_conservative(const void* begin, const void* end) override { scan_words(begin, end); }
  // Ephemerons (ephemeron.cpp): an entry whose key is reached has its value
  // visited at once; the others wait in a pending list for the fixpoint.
  void visit_ephemerons(const EphemeronTable& table) override;
  // One fixpoint round over the pending entries (collecting thread, after
  // a drain): visits the value of each entry whose key is now reached.
  // True when it pushed something, so the caller drains again.
  bool process_ephemerons();
  // End of a collection (kMark): drops the entries of every table traced
  // in it whose key is unmarked; returns how many.
  std::uint64_t drop_dead_ephemerons();
  std::uint64_t ephemeron_rounds() const noexcept { return ephemeron_rounds_; }
  std::uint64_t ephemeron_entries() const noexcept { return ephemeron_entries_; }
  // Conservative: marks the live object containing `word`, if any.
  void visit_word(std::uintptr_t word);
  // `fake_stack`: the scanned thread's ASan fake stack, if any; a word that
  // points into one of its frames makes that frame scanned too.
  void scan_words(const void* begin, const void* end, void* fake_stack = nullptr);

  std::uint64_t marked_bytes() const noexcept { return marked_bytes_; }
  std::uint64_t marked_objects() const noexcept { return marked_objects_; }
  std::uint64_t verify_failures() const noexcept { return verify_failures_; }
  std::uint64_t remembered_cards() const noexcept { return remembered_cards_; }
  std::uint64_t remembered_objects() const noexcept { return remembered_objects_; }

 private:
  bool try_mark(const void* object);
  // The target check (mark_target.h, .cpp): `cell`'s block when it is a
  // live block cell of this heap, nullptr when it is one of its large
  // objects; aborts on anything else.
  MarkedBlock* checked_target(const void* cell);
  MarkedBlock* checked_target_slow(const void* cell);
  [[noreturn]] void report_foreign_target(const void* cell) const;
  void trace_one(const void* object);
  void trace_dirty_cards();
  void trace_cards_of(MarkedBlock& block);
  std::size_t object_capacity(const void* object) const;
  const void* find_large(std::uintptr_t word) const noexcept;
  // Marked by this collection (kMark) or visited by this traversal (kVerify).
  bool reached(const void* object);

  HeapInternals& heap_;
  const Mode mode_;
  const std::uint32_t version_;
  const AddressBounds bounds_;  // read once: nothing is allocated while the world is stopped
  std::vector<const void*> stack_;
  std::vector<std::pair<std::uintptr_t, std::size_t>> large_;  // sorted (cell, size)
  std::unordered_set<const void*> visited_;  // kVerify only
  const Chunk* target_chunk_ = nullptr;  // checked_target's cache: the chunk of the last block cell
  std::uintptr_t target_chunk_base_ = UINTPTR_MAX - kChunkSize;  // its base; at first, no address is inside
  const void* tracing_ = nullptr;  // the object whose trace() is running, for reports
  std::uint64_t marked_bytes_ = 0;
  std::uint64_t marked_objects_ = 0;
  std::uint64_t verify_failures_ = 0;
  std::uint64_t remembered_cards_ = 0;
  std::uint64_t remembered_objects_ = 0;
  std::vector<std::pair<const void*, const void*>> ephemeron_pending_;  // (key, value), key not yet reached
  std::vector<EphemeronTable*> ephemeron_tables_;  // traced by this collection (kMark only)
  std::uint64_t ephemeron_rounds_ = 0;
  std::uint64_t ephemeron_entries_ = 0;
  std::uint64_t marked_at_last_round_ = ~std::uint64_t{0};  // marked_objects_ when a round last ran
};

// Full collections: clears every card and the list of objects found under
// construction (remembered_set.cpp).
void forget_remembered(HeapInternals& heap);

}  // namespace handoff::detail
