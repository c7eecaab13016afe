// The cache budget: a smaller allocation budget between two collections
// when the last one found almost nothing alive.
//
// Why. Between two collections the allocators hand out about the whole
// budget once, and the next cycle hands out the same blocks again. On a
// heap where nearly everything dies young (allocation churn), the budget
// is therefore the working set the caches see: every cycle writes into
// every block of it. Measured on the churn benchmark (papers/allocator.md "Churn
// against the cache"), throughput at 128 and 256 B falls by a factor of
// two to five between a budget of 4 MiB and one of 8 MiB, the default
// floor, on a machine whose last-level cache is nominally 32 MiB but
// shared; no reuse order of the blocks moves that edge. A collection of a
// heap with nothing live costs a fixed price (stop, roots, begin the lazy
// sweep), so a smaller budget costs more collections, which pays only when
// each one finds little to mark.
//
// The rule. After a collection that marked less than
// kCacheBudgetSurvivalPermille of the bytes allocated since the one before
// (an eden collection: what survived; a full one: everything live), the
// next trigger is at most HANDOFF_CACHE_BUDGET_BYTES. Otherwise it is the
// trigger that growth_percent and the generational policy set
// (collection.cpp). A workload that keeps more than that alive, where more
// frequent collections would promote objects that would have died with a
// larger budget and mark more often, keeps its budget; a workload whose
// survivors are below the threshold promotes at most that fraction of the
// smaller budget per collection. 0 switches the rule off.
//
// Per allocating thread. The budget is HANDOFF_CACHE_BUDGET_BYTES for each
// thread that allocated in the cycle that just ended (ThreadAllocator::flush
// says so at the stop), up to one per online CPU. A collection stops every
// thread, and its fixed price grows with them, while with T threads
// allocating the same per-thread budget is used up T times as fast: with
// one budget for the heap, two threads' churn spent a third to a half of
// its wall time in pauses at 1024 B (papers/allocator.md "Claim lanes").
// The cycle's blocks are written by T cores with T private caches, so the
// per-core share of the cycle stays that of one thread; the shared last
// level sees T times the bytes, which is why the multiplier stops at the
// CPUs that can write at once. Measured in papers/allocator.md, "The cache
// budget per allocating thread".
//
// Not a function of the cache size the CPU reports: in a virtual machine
// or beside other processes the share of the shared cache a process gets
// is what matters, and it is smaller than what cpuid or sysfs says.
#pragma once

#include <cstddef>
#include <cstdint>

namespace handoff::detail {

// Below this many bytes marked per thousand allocated, a collection counts
// as having found almost nothing alive.
inline constexpr std::uint64_t kCacheBudgetSurvivalPermille = 10;

// The next trigger: `trigger`, capped at `cache_bytes` when the collection
// that just ended marked `marked_bytes` out of `allocated_since` (the bytes
// allocated since the collection before) below the threshold. `cache_bytes`
// 0: `trigger` unchanged.
std::uint64_t cache_budget_trigger(std::uint64_t trigger, std::uint64_t marked_bytes, std::uint64_t allocated_since,
                                   std::uint64_t cache_bytes) noexcept;

// The cache budget of a cycle in which `allocating_threads` threads
// allocated, on a machine of `cpus` online CPUs: `per_thread_bytes` for
// each allocating thread up to one per CPU, at least one (saturating).
std::uint64_t cache_budget_for_threads(std::uint64_t per_thread_bytes, std::size_t allocating_threads,
                                       std::size_t cpus) noexcept;

}  // namespace handoff::detail
