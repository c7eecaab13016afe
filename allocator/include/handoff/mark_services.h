// What a marking collector asks of the allocator about mark bits and the
// walks it makes over every block with the world stopped, named for the
// question, so that the collector does not read a block's bitmaps or
// header itself (STYLE.md 14). cell_services.h holds the questions about
// single cells that a mutator-side caller asks; this header the marker's,
// the verifier's and the stopped-world walks'. Public because the sweep
// these marks drive, SweepPolicy::by_marks, is: a collector of one's own
// on the allocator alone sets marks through this header.
//
//   mark_small_cell             a marker of one's own (the collector's
//                               marker marks on its hot path, below)
//   is_marked_small_cell        HeapInternals::is_marked, Marker::reached
//                               (ephemeron keys)
//   small_cell_size             Marker::object_capacity
//   allocated_cell_holding      Marker::visit_word (conservative roots,
//                               DESIGN.md invariant 7: allocated cells only)
//   next_mark_version           a full collection's new mark version
//   for_each_marked_small_cell  HeapInternals::drop_one_mark (the
//   clear_small_cell_mark       verifier's negative control)
//   for_each_block_with_dirty_cards  Marker::remember_directory,
//                               forget_remembered (the card walk)
//   audit_blocks_after_mark     verify_heap, step 1: the heap walk
//   dump_block_holding          reports of heap corruption
//
// "Small cell": a cell of one of the heap's blocks, that is a pointer for
// which in_block_chunks() holds and that lies in a block the pool has
// handed out (BlockPool::is_handed_out), as opposed to a large object.
// Every function here reads or writes mark bits, so each runs where
// marking may: with the world stopped, or on the marker's threads during
// the mark phase (DESIGN.md invariant 4: marking and sweeping never race
// on a block). The inline ones compile to what the collector wrote before
// (a mask to the block header, one bitmap word): no call per object.
//
// What stays outside, and why. The marker's per-edge path,
// Marker::checked_target (collector/src/mark_target.h) and Marker::try_mark,
// still names MarkedBlock: checked_target caches the chunk of the last
// target and returns the block it has already found, and try_mark marks
// through that pointer (AccessMode::kShared when parallel) and reads its
// cell size from the same header line. Passing it through a narrower
// function would either derive the block a second time per edge or move
// the chunk cache into the allocator; it is the one place where the
// collector's speed is the allocator's layout. The remembered set's card
// walk (remembered_set.cpp) also stays: cards are per block, and the walk
// visits each dirty card's cells in place. scripts/check_layers.py lists
// these files and fails when another collector source names MarkedBlock.
#pragma once

#include <handoff/allocator.h>
#include <handoff/marked_block.h>
#include <handoff/size_classes.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>
#include <type_traits>

namespace handoff {

// Marks the small cell starting at `cell` for collection `version`; true
// when it was not marked yet. kShared when several markers run at once.
template <AccessMode M = AccessMode::kExclusive>
inline bool mark_small_cell(const void* cell, std::uint32_t version) noexcept {
  return MarkedBlock::of(cell)->mark<M>(cell, version);
}

// `cell` (a small cell's start) carries the mark of collection `version`.
inline bool is_marked_small_cell(const void* cell, std::uint32_t version) noexcept {
  return MarkedBlock::of(cell)->is_marked(cell, version);
}

// The size of the cell of the block holding `p` (header included).
inline std::size_t small_cell_size(const void* p) noexcept { return MarkedBlock::of(p)->cell_size(); }

// The start of the allocated cell holding `p`, or nullptr for a free or
// dead cell, the header, or the tail. Its block must not be swept
// meanwhile (the world is stopped), so its live bits are final.
inline void* allocated_cell_holding(const void* p) noexcept {
  const MarkedBlock* block = MarkedBlock::of(p);
  void* cell = block->cell_start(p);
  if (cell == nullptr || !block->live_bits().get(MarkedBlock::atom_of(cell))) return nullptr;
  return cell;
}

// The version a full collection marks with after `version`: never 0 (a
// block's "never marked") nor MarkedBlock::kMarkVersionClearing (a block's
// claim on its bitmap while one thread clears it).
inline constexpr std::uint32_t next_mark_version(std::uint32_t version) noexcept {
  const std::uint32_t next = version + 1;
  return next == 0 || next == MarkedBlock::kMarkVersionClearing ? 1 : next;
}

// World stopped: calls f(cell) for allocated small cells marked at
// `version`, directory by directory, block by block, until f returns false.
// Out of line, so that this header does not need the internal directory.h;
// a walk of the whole heap with the world stopped (the verifier's negative
// control) pays one indirect call per marked cell for it.
void for_each_marked_small_cell(Allocator& heap, std::uint32_t version, const std::function<bool(void*)>& f);

// World stopped: calls f(block) for every block of size class
// `size_class` that has a dirty card (MarkedBlock::any_card_dirty), in
// registry order: the remembered set's card walk, one task per size class
// (remembered_set.cpp). The walk is out of line for the same reason as
// for_each_marked_small_cell, but takes `f` as a function and a context
// (no std::function to build and destroy on every call, which is once per
// size class per collection), and tests each block's cards itself, so the
// indirect call is paid only for blocks with a dirty card, where the walk
// then visits cells; most blocks of an eden collection have none.
using DirtyBlockVisit = void (*)(void* context, MarkedBlock& block);
void for_each_block_with_dirty_cards(Allocator& heap, std::size_t size_class, DirtyBlockVisit visit, void* context);
template <class F>
void for_each_block_with_dirty_cards(Allocator& heap, std::size_t size_class, F&& f) {
  using Callable = std::remove_reference_t<F>;
  for_each_block_with_dirty_cards(
      heap, size_class, [](void* context, MarkedBlock& block) { (*static_cast<Callable*>(context))(block); },
      const_cast<void*>(static_cast<const void*>(&f)));
}

// Forgets the mark of the small cell `cell` (the verifier's negative
// control plants a missed mark this way). World stopped.
inline void clear_small_cell_mark(const void* cell) noexcept {
  MarkedBlock::of(cell)->mark_bits().clear(MarkedBlock::atom_of(cell));
}

// The heap walk of the verifier, after marking at `version`, world stopped,
// the previous lazy sweep finished: every block is FULL, SWEPT, EMPTY or
// RETIRED; passes MarkedBlock::check_invariants (which aborts with the
// block dumped); carries marks of `version` only on allocated cells; and
// its live + free cells are its capacity; no directory holds more live
// cells than it has room for. The first problem found, with its block
// (nullptr for a directory's); `problem` empty when there is none.
struct BlockAudit {
  const void* block = nullptr;
  std::string problem;
};
BlockAudit audit_blocks_after_mark(Allocator& heap, std::uint32_t version);

// Writes the header, state and bitmaps of the block holding `p` (a small
// cell or block address), for a report of heap corruption.
void dump_block_holding(const void* p, std::ostream& out);

}  // namespace handoff
