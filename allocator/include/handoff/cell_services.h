// What a layer above the allocator (a collector, a runtime) asks of it about
// single cells, named for the question, so that the layer above never reads
// a block's state word or writes a block's header itself (STYLE.md 14).
//
//   note_destructible_cell    Heap::construct, on the allocating thread, for
//                             a cell it just allocated: its own OWNED block
//                             (or a large object, which needs nothing)
//   give_up_block_holding     Heap::record_own_cells, unpinned, any pointer
//   find_cell_for_lookup      Heap::find_object, pinned by the caller
//   in_block_chunks           any thread, any pointer: the chunk map only
//
// Each reads only what the handoff protocol lets its caller read: the state
// word of a block that may have been freed is type-stable memory
// (MarkedBlock::state_possibly_freed), and a header is read only under a pin
// after Allocator::lookup_block said it may be (DESIGN.md invariant 7).
#pragma once

#include <handoff/allocator.h>
#include <handoff/marked_block.h>
#include <handoff/size_classes.h>
#include <handoff/thread_allocator.h>

#include <cstddef>

namespace handoff {

// `cell` (of `size` bytes, just allocated by the calling thread) will hold an
// object with a destructor: the sweep of its block must run destructors.
// Inline: it is on the allocation fast path of a destructible type. A small
// cell's block is OWNED by the caller, so the store is the owner's own.
inline void note_destructible_cell(void* cell, std::size_t size) noexcept {
  if (size <= kMaxSmallSize) MarkedBlock::of(cell)->note_destructible();
}

// When `p` lies in the block `thread` allocates from for that block's size
// class, gives that block up, so that the block's live bits record every
// cell `thread` allocated in it (the next allocation re-claims it). Safe on
// any pointer and without a pin: it reads only the type-stable state word,
// and acts only on a block `thread` owns.
void give_up_block_holding(const Allocator& heap, ThreadAllocator& thread, const void* p) noexcept;

// The start of the cell holding `p` for a lookup that means to read the cell:
// Allocator::find_cell's allocated cell, except in a block another thread
// owns, whose live bits lag its free list: there, the cell whose start lies
// at or before `p` (under ASan, nullptr when that cell is poisoned, i.e.
// free). nullptr when `p` is in no cell of this heap. The caller holds a pin
// (ScopedPin on heap.epochs()) across the call and every read of the cell;
// the pin is internal (epoch.h), so this is the project's own collector's
// call: elsewhere Allocator::find_cell, which pins itself, is the lookup.
void* find_cell_for_lookup(const Allocator& heap, const void* p) noexcept;

// `p` lies in one of the heap's block chunks (small cells; not a large object,
// not outside the heap). The chunk map only: no block is touched. Out of
// line so that this header needs no pool (block_pool.h is internal); the
// chunk lookup it makes was a call already.
bool in_block_chunks(const Allocator& heap, const void* p) noexcept;

}  // namespace handoff
