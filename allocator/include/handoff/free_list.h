// The free list of a local allocator's current block, in JSC's shape: a
// singly linked list of free *intervals* (runs of adjacent free cells), with
// the allocator bumping through the current interval.
//
//   cursor_ ---> [cell][cell][cell] <--- limit_        current interval
//   head_   ---> {next, end} -> {next, end} -> null    further intervals
//
// An empty block is one interval spanning the payload (pure bump mode); a
// single free cell between live ones is an interval of length one (linked
// mode). The interval header {next, end} lives in the first 16 bytes of the
// interval's first cell, so the list costs no memory outside the block.
//
// Equation: cells handed out since build() + remaining_cells() == cells on
// the list at build(); LocalAllocator checks it.
//
// Single-threaded by construction: only the owning thread of the block
// (state kOwned) ever touches its free list (DESIGN.md invariant 1).
//
// Installed only because the allocation fast path is inline
// (allocate_inlines.h) and LocalAllocator holds its FreeList by value; it
// holds exactly what that path reads. Not for embedders to use.
#pragma once

#include <handoff/sanitizer.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace handoff {

class MarkedBlock;

// Written into the first free cell of each run. `next` overlaps the header
// word of the object that cell may later hold, which a lookup on another
// thread may read while this thread owns the block (Heap::find_object on
// another thread's current block): so it is an atomic, relaxed on both
// sides (a plain mov on x86-64, the fast path's code is unchanged).
struct FreeInterval {
  std::atomic<FreeInterval*> next;
  char* end;
};

class FreeList {
 public:
  // Fast path: one compare, one add, no atomics. Falls back to the next
  // interval, then to `slow` when the list is exhausted.
  template <class SlowPath>
  HANDOFF_ALWAYS_INLINE void* allocate(SlowPath&& slow) {
    char* cell = cursor_;
    if (cell < limit_) [[likely]] {
      cursor_ = cell + cell_size_;
      HANDOFF_UNPOISON(cell, cell_size_);
      return cell;
    }
    return next_interval_or(slow);
  }

  // Rebuilds the list from `block`'s live bitmap: every cell whose live bit is
  // clear becomes free. Returns the number of free cells. The caller owns the
  // block exclusively.
  std::size_t build(const MarkedBlock& block) noexcept;
  // The same, given the block's live cell count (a refill has just counted
  // it): the count is then read from the bitmap once per refill, not twice.
  std::size_t build(const MarkedBlock& block, std::size_t live_cells) noexcept;

  void clear() noexcept { cursor_ = limit_ = nullptr, head_ = nullptr; }
  bool empty() const noexcept { return cursor_ >= limit_ && head_ == nullptr; }
  std::size_t cell_size() const noexcept { return cell_size_; }
  std::size_t remaining_cells() const noexcept;
  bool in_bump_mode() const noexcept { return head_ == nullptr; }

  // Calls f(cell) for every cell still on the list, in address order.
  template <class F>
  void for_each_remaining_cell(F&& f) const {
    for (char* c = cursor_; c < limit_; c += cell_size_) f(static_cast<void*>(c));
    for (const FreeInterval* iv = head_; iv != nullptr; iv = iv->next.load(std::memory_order_relaxed)) {
      for (char* c = const_cast<char*>(reinterpret_cast<const char*>(iv)); c < iv->end; c += cell_size_) {
        f(static_cast<void*>(c));
      }
    }
  }

 private:
  template <class SlowPath>
  HANDOFF_ALWAYS_INLINE void* next_interval_or(SlowPath& slow) {
    FreeInterval* interval = head_;
    if (interval == nullptr) return slow();
    head_ = interval->next.load(std::memory_order_relaxed);
    char* cell = reinterpret_cast<char*>(interval);
    limit_ = interval->end;
    cursor_ = cell + cell_size_;
    HANDOFF_UNPOISON(cell, cell_size_);
    return cell;
  }

  char* cursor_ = nullptr;
  char* limit_ = nullptr;
  FreeInterval* head_ = nullptr;
  std::size_t cell_size_ = 0;
};

}  // namespace handoff
