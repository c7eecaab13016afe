#include <handoff/cell_services.h>
#include <handoff/block_pool.h>
#include <handoff/chaos.h>
#include <handoff/sanitizer.h>

namespace handoff {

bool in_block_chunks(const Allocator& heap, const void* p) noexcept { return heap.pool().chunk_of(p) != nullptr; }

void give_up_block_holding(const Allocator& heap, ThreadAllocator& thread, const void* p) noexcept {
  if (!heap.pool().is_handed_out(p)) return;
  const MarkedBlock* block = MarkedBlock::of(p);
  // Unpinned: the block may be freed meanwhile, so only its type-stable state
  // word is read, and acted on only when the block is our own.
  const BlockStateWord state = MarkedBlock::state_possibly_freed(block);
  // Our own current block: its cells are recorded in the live bits only when
  // we give it up, so give it up (the next allocation re-claims it).
  if (state.state == BlockState::kOwned && state.owner == thread.owner_id()) {
    thread.local_allocator(block->size_class()).stop_allocating();
  }
}

void* find_cell_for_lookup(const Allocator& heap, const void* p) noexcept {
  const MarkedBlock* block = heap.lookup_block(p);
  if (block == nullptr) return heap.find_cell(p);
  HANDOFF_CHAOS_POINT(kLookup);
  if (block->state().state != BlockState::kOwned) return heap.find_cell(p);
  // Another thread's current block: its live bits are not up to date and
  // its free list is private to the owner, so accept a cell whose header
  // is intact. A cell freed before the owner claimed the block keeps its
  // old header and passes (documented in handles.h); under ASan it is
  // poisoned, and refused here instead of read.
  void* cell = block->cell_start(p);
#if defined(HANDOFF_ASAN)
  if (cell != nullptr && __asan_address_is_poisoned(cell)) return nullptr;
#endif
  return cell;
}

}  // namespace handoff
