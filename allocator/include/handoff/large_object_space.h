// The large-object space: requests above kMaxSmallSize get their own
// page-aligned mapping with a 64-byte header in front of the object.
//
//   mapping: | LargeObjectHeader (64 B) | object ... | page padding |
//
// Lookup from an interior pointer uses an ordered map keyed by object start,
// under a shared lock (lookups are readers; allocation and sweeping are
// writers). Objects are charged to the same HeapBudget as blocks, so the heap
// limit and the failure injector cover them too.
//
// Sweeping snapshots the published objects under the lock, asks the
// predicate without holding it (so a predicate may inspect other objects),
// and unmaps the dead ones under the lock again.
//
// An object a ThreadAllocator allocates stays unpublished until that
// thread's next flush(), the same rule as a cell in a block the thread owns:
// no sweep on another thread judges an object whose owner may still be
// initialising it. Objects allocated directly (publish = true) are
// published at once.
#pragma once

#include <handoff/block_pool.h>
#include <handoff/liveness.h>
#include <handoff/marked_block.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <shared_mutex>

namespace handoff {

struct LargeObjectStats {
  std::size_t objects = 0;
  std::size_t object_bytes = 0;   // requested sizes
  std::size_t mapped_bytes = 0;   // whole mappings
  std::uint64_t allocated = 0;
  std::uint64_t freed = 0;
};

class LargeObjectSpace {
 public:
  static constexpr std::size_t kHeaderSize = 64;

  explicit LargeObjectSpace(HeapBudget& budget) noexcept : budget_(budget) {}
  ~LargeObjectSpace();
  LargeObjectSpace(const LargeObjectSpace&) = delete;
  LargeObjectSpace& operator=(const LargeObjectSpace&) = delete;

  // Largest request that does not overflow when header and page rounding are
  // added; the caller reports larger ones as kSizeOverflow.
  static std::size_t max_request() noexcept;

  // nullptr when the OS or the budget refuses.
  void* allocate(std::size_t size, bool publish = true) noexcept;
  // Makes an unpublished object visible to sweeps.
  void publish(void* object) noexcept;
  // Start of the object containing p, or nullptr.
  void* find(const void* p) const noexcept;
  // Requested size of the object starting at `object`, or 0 if none does.
  std::size_t size_of(const void* object) const noexcept;
  SweepCounts sweep(const LivenessPredicate& is_live);

  template <class F>
  void for_each_object(F&& f) const {
    std::shared_lock lock(mutex_);
    for (const auto& [start, entry] : objects_) f(reinterpret_cast<void*>(start), entry.size);
  }

  LargeObjectStats stats() const;

 private:
  struct Entry {
    std::size_t size;
    std::size_t mapping_size;
    bool published;
  };
  void unmap(std::uintptr_t start, const Entry& entry) noexcept;

  HeapBudget& budget_;
  mutable std::shared_mutex mutex_;
  std::mutex sweep_mutex_;  // one sweep at a time
  std::map<std::uintptr_t, Entry> objects_;
  LargeObjectStats counters_;
};

}  // namespace handoff
