// The heap verifier: run after marking, world stopped, before the sweep.
//
//   1. Heap walk (audit_blocks_after_mark, mark_services.h: the allocator
//      reads its own blocks). Every block is in exactly one state, and with the world
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
#include <handoff/mark_services.h>

#include <iostream>
#include <string>

namespace handoff::detail {
namespace {

[[noreturn]] void verify_failed(const void* block, const std::string& what) {
  std::cerr << "handoff: verifier: " << what << "\n";
  if (block != nullptr) dump_block_holding(block, std::cerr);
  HANDOFF_CHECK(false, "heap verification failed");
}

}  // namespace

void verify_heap(HeapInternals& heap) {
  const BlockAudit audit = audit_blocks_after_mark(heap.allocator, heap.mark_version);
  if (!audit.problem.empty()) verify_failed(audit.block, audit.problem);
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
