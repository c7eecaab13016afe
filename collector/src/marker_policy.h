// How many threads a collection's stopped-world phases use: the collecting
// thread alone, or it and every marker thread (HANDOFF_MARKER_THREADS, the
// maximum). Chosen per collection, per phase, before the phase starts.
//
// Why choose at all: a phase on the marker threads pays a fixed price
// whatever its size: a futex wake per helper, the time until the scheduler
// runs it (on a loaded machine a helper that wakes late holds the whole
// round at its barrier), the termination protocol's idle rounds, a helper
// Marker each. Marking a live set of a few kilobytes, or walking the
// registry of a few dozen blocks, costs less than that, so a heap whose
// live set is tiny (allocation churn) collected slower in parallel than on
// one thread. Each phase therefore uses the helpers only when its work is
// expected to reach a threshold (measured: papers/collector.md "Marker
// threads: when they are used"):
//
//   mark        the bytes the collection expects to mark: a full
//               collection marks about what is live (the last full
//               collection's marked bytes plus what eden collections
//               promoted since); an eden collection about what the last
//               eden collection marked. Parallel when that reaches
//               HANDOFF_MARKER_PARALLEL_MIN_BYTES.
//   sweep begin the block slots of every directory (what the walk visits,
//               known exactly when it starts). Parallel when they reach
//               HANDOFF_MARKER_PARALLEL_MIN_BLOCKS (and the walk has at
//               least two parts of Allocator::kLazySweepPartSlots).
//
// A wrong guess costs speed, never correctness: marking on one thread is
// the plain single-threaded marker, which marks any live set correctly. A
// collection that finds far more than expected (a small collection, then a
// big live set built before the next one) marks it on one thread once; the
// next collection expects what this one marked and uses the helpers. The
// mark phase does not switch to the helpers in the middle: that would
// change the mark bits' access mode (exclusive to shared) under a running
// drain, for a gain on one collection in a phase change.
//
// 0 for a threshold means "always in parallel" (as before the choice
// existed), which the tests that exercise the parallel marker on small
// heaps use.
#pragma once

#include <cstddef>
#include <cstdint>

namespace handoff::detail {

// The bytes a collection expects to mark (see above). `live_bytes`: the
// last full collection's marked bytes plus the bytes promoted since;
// `last_eden_marked`: the bytes the last eden collection marked (0 before
// the first).
std::uint64_t expected_mark_bytes(bool eden, std::uint64_t live_bytes, std::uint64_t last_eden_marked) noexcept;

// Threads for the mark phase: `max_workers` (the collecting thread and every
// marker thread) when `expected_bytes` reaches `min_bytes`, else 1.
std::size_t mark_workers(std::size_t max_workers, std::uint64_t expected_bytes, std::uint64_t min_bytes) noexcept;

// Threads for beginning the lazy sweep over `block_slots` registry slots:
// `max_workers` when they reach `min_blocks`, else 1.
std::size_t sweep_begin_workers(std::size_t max_workers, std::uint64_t block_slots, std::uint64_t min_blocks) noexcept;

}  // namespace handoff::detail
