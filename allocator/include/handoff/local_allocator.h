// A local allocator: one per thread and size class. It owns at most one
// block at a time (state kOwned, DESIGN.md invariant 1) and allocates from
// that block's free list with no atomics and no locks. The fast path is in
// allocate_inlines.h; everything here is the slow path.
//
// Call tree:
//   allocate()                       inline: FreeList::allocate, one branch
//     -> allocate_slow()             out of line, cold
//          -> refill()
//               -> give_up_current() OWNED -> FULL | SWEPT (release store)
//               -> reclaim_last_block()    no pin: R1-R3 of papers/handoff.md
//               -> Directory::try_claim    (pinned; one CAS; sweeps if UNSWEPT)
//               -> Directory::take_fresh_block  (pool, when nothing to claim)
//               -> FreeList::build          (from the live bitmap)
//
// Give-up records the cells handed out since the claim in the live bitmap
// all at once (every cell except those still on the free list), one store
// per bitmap word. The fast path therefore never touches the bitmap.
//
// Equation (checked by check_invariants() in debug builds):
//   live_at_claim + allocated + on_free_list == block capacity
#pragma once

#include <handoff/counters.h>
#include <handoff/free_list.h>
#include <handoff/marked_block.h>
#include <handoff/sanitizer.h>

#include <cstddef>
#include <cstdint>
#include <span>

namespace handoff {

// Internal (allocator/internal/handoff/directory.h, epoch.h): a local
// allocator holds them through pointers and names ClaimResult in a private
// signature, so this header needs only their names.
class Directory;
class EpochParticipant;
struct ClaimResult;

// One local allocator's private scan position in its directory's registry
// (Directory::try_claim) and the directory cycle that position belongs to;
// try_claim restarts the pass when the cycle has moved (a cursor that has
// never scanned belongs to no cycle). Ascending, `next` is the next slot to
// read; descending, the slot below `next` is (the scan runs down to slot
// 0). The direction is the allocator's lane, fixed when it is bound
// (lane_descends): see "Claim lanes" in directory.cpp. Here, not in
// directory.h, because LocalAllocator holds it by value.
struct ClaimCursor {
  static constexpr std::uint64_t kNoCycle = ~std::uint64_t{0};

  std::size_t next = 0;
  std::uint64_t cycle = kNoCycle;
  bool descending = false;

  // The lane of owner id `owner`: ids are handed out in sequence
  // (Allocator::attach), so two threads attached one after the other scan
  // from opposite ends of the registry.
  static constexpr bool lane_descends(std::uint32_t owner) noexcept { return (owner & 1) == 0; }

  bool done(std::size_t slots) const noexcept { return descending ? next == 0 : next >= slots; }
  std::size_t step() noexcept { return descending ? --next : next++; }
  // A whole pass over `slots` registry slots from the direction's start.
  void rewind(std::size_t slots) noexcept { next = descending ? slots : 0; }
  // Makes the rest of this pass include slot `index` again.
  void revisit(std::size_t index) noexcept {
    if (descending) {
      if (index >= next) next = index + 1;
    } else if (index < next) {
      next = index;
    }
  }
};

// What each counter means is said once, in its table (local_allocator.cpp),
// which the sums, the JSON and the text dump iterate.
struct LocalAllocatorCounters {
  std::uint64_t refills = 0;
  std::uint64_t claims = 0;
  std::uint64_t fresh_blocks = 0;
  std::uint64_t lazy_sweeps = 0;
  std::uint64_t lazily_freed = 0;
  std::uint64_t cas_failures = 0;
  std::uint64_t cells_from_claims = 0;
  std::uint64_t last_block_reclaims = 0;

  static std::span<const CounterSpec<LocalAllocatorCounters>> table() noexcept;
  LocalAllocatorCounters& operator+=(const LocalAllocatorCounters& o) noexcept;
  LocalAllocatorCounters& operator-=(const LocalAllocatorCounters& o) noexcept;
};

class LocalAllocator {
 public:
  struct Accounting {
    std::size_t capacity = 0;
    std::size_t live_at_claim = 0;
    std::size_t allocated = 0;
    std::size_t on_free_list = 0;
    bool balanced() const noexcept { return live_at_claim + allocated + on_free_list == capacity; }
  };

  LocalAllocator() = default;
  LocalAllocator(const LocalAllocator&) = delete;
  LocalAllocator& operator=(const LocalAllocator&) = delete;

  void bind(Directory& directory, std::uint32_t owner, EpochParticipant& participant) noexcept;

  // Fast paths (allocate_inlines.h). try_allocate() returns nullptr when no
  // block is left (AllocationFailure::kNoBlock); allocate() throws the
  // Error for it instead (its slow path wraps try_allocate's).
  void* allocate();
  void* try_allocate() noexcept;

  // Gives the current block back to the directory (JSC's stopAllocating).
  void stop_allocating() noexcept;

  MarkedBlock* current_block() const noexcept { return current_; }
  Directory* directory() const noexcept { return directory_; }
  const LocalAllocatorCounters& counters() const noexcept { return counters_; }
  Accounting accounting() const noexcept;
  void check_invariants() const;

 private:
  HANDOFF_SLOW_PATH void* allocate_slow();
  HANDOFF_SLOW_PATH void* try_allocate_slow() noexcept;
  bool refill() noexcept;
  ClaimResult rescan_before_failing() noexcept;
  ClaimResult reclaim_last_block() noexcept;
  void count_claim(const ClaimResult& claim) noexcept;
  void give_up_current() noexcept;

  FreeList free_list_;
  MarkedBlock* current_ = nullptr;
  Directory* directory_ = nullptr;
  ClaimCursor cursor_;
  EpochParticipant* participant_ = nullptr;
  // The block last given up with free cells and its generation (R1): a
  // stale pointer on purpose, re-claimed only if the generation still matches.
  MarkedBlock* last_block_ = nullptr;
  std::uint32_t last_generation_ = 0;
  std::uint32_t owner_ = 0;
  std::size_t live_at_claim_ = 0;
  std::size_t list_at_claim_ = 0;
  LocalAllocatorCounters counters_;
};

}  // namespace handoff
