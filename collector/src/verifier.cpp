// The heap verifier: run after marking, world stopped, before the sweep.
//
//   1. Heap walk. Every block is in exactly one state, and with the world
//      stopped and the previous sweep finished that state is FULL, SWEPT,
//      EMPTY or RETIRED (never OWNED, UNSWEPT or SWEEPING); each block passes
//      MarkedBlock::check_invariants (live bits only on cell starts, counts
//      agree with the state); marks of this cycle sit only on allocated cells;
//      the directory's live + free cell counts add up to its capacity.
//   2. Independent marking. A second traversal from the same roots, with its
//      own visited set instead of mark bits, checks that every object it
//      reaches carries the collector's mark and a valid type header. A cell
//      the collector missed would be freed while reachable (invariant 6).
//      Ephemeron tables get the same fixpoint as in marking, over the
//      visited set: a value reached through an entry whose key the
//      traversal reached must be marked; a value whose key it did not reach
//      is not traversed (entries with dead keys are dropped after this).
//
// The verifier runs on the collecting thread alone, whatever
// HANDOFF_MARKER_THREADS says (a Mode::kVerify marker never uses the marker
// threads): it is a check, not a pause to shorten, and an independent
// single-threaded traversal is the simplest thing to trust.
#include "marker.h"

#include <handoff/check.h>

#include <iostream>
#include <string>

namespace handoff::detail {
namespace {

[[noreturn]] void verify_failed(const MarkedBlock* block, const std::string& what) {
  std::cerr << "handoff: verifier: " << what << "\n";
  if (block != nullptr) block->dump(std::cerr);
  HANDOFF_CHECK(false, "heap verification failed");
}

void verify_block(const MarkedBlock& block, std::uint32_t version) {
  const BlockState state = block.state().state;
  if (state != BlockState::kFull && state != BlockState::kSwept && state != BlockState::kEmpty &&
      state != BlockState::kRetired) {
    verify_failed(&block, std::string("block in state ") + block_state_name(state) + " while the world is stopped");
  }
  block.check_invariants();
  if (block.mark_version() != version) return;
  for (std::size_t w = 0; w < AtomBitmap::kWords; ++w) {
    if ((block.mark_bits().word(w) & ~block.live_bits().word(w)) != 0) {
      verify_failed(&block, "a free cell is marked");
    }
  }
}

}  // namespace

void verify_heap(HeapInternals& heap) {
  for (std::size_t cls = 0; cls < kNumSizeClasses; ++cls) {
    Directory& directory = heap.allocator.directory(cls);
    std::size_t live = 0;
    std::size_t capacity = 0;
    directory.for_each_block([&](const MarkedBlock& block) {
      verify_block(block, heap.mark_version);
      live += block.live_cell_count();
      capacity += block.cell_count();
      if (block.live_cell_count() + block.free_cell_count() != block.cell_count()) {
        verify_failed(&block, "live + free cells differ from the block's capacity");
      }
    });
    if (live > capacity) verify_failed(nullptr, "a directory holds more live cells than it has room for");
  }
  Marker second(heap, Marker::Mode::kVerify);
  second.mark_roots();
  drain_to_fixpoint(second);  // ephemerons: a value counts only through its reached key
  if (second.verify_failures() != 0) {
    verify_failed(nullptr, std::to_string(second.verify_failures()) +
                               " reachable object(s) were not marked by the collection");
  }
  std::lock_guard lock(heap.stats_mutex);
  ++heap.counters.verifications;
}

}  // namespace handoff::detail
