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
#include <handoff/error.h>
#include <handoff/liveness.h>
#include <handoff/marked_block.h>
#include <handoff/space_stats.h>  // LargeObjectStats

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <shared_mutex>

namespace handoff {

class LargeObjectSpace {
 public:
  static constexpr std::size_t kHeaderSize = 64;

  explicit LargeObjectSpace(HeapBudget& budget) noexcept : budget_(budget) {}
  ~LargeObjectSpace();
  LargeObjectSpace(const LargeObjectSpace&) = delete;
  LargeObjectSpace& operator=(const LargeObjectSpace&) = delete;

  // Largest request that does not overflow when header and page rounding are
  // added.
  static std::size_t max_request() noexcept;
  // Why no large object of `size` bytes can exist (kSizeOverflow above
  // max_request(), kUnbackable above what the machine can back), or kNone.
  // The one size check of a large request; allocate() makes it, and the
  // collector asks before it counts the request as allocated.
  static AllocationFailure refusal(std::size_t size) noexcept;

  // A refused size (refusal()), or kNoMapping when the OS or the budget
  // refuses the mapping.
  Allocation allocate(std::size_t size, bool publish = true) noexcept;
  // Makes an unpublished object visible to sweeps.
  void publish(void* object) noexcept;
  // Start of the object containing p, or nullptr.
  void* find(const void* p) const noexcept;
  // Requested size of the object starting at `object`, or 0 if none does.
  std::size_t size_of(const void* object) const noexcept;
  // Sweeps published objects: `policy` judges each one (by_marks: by the
  // mark word in its mapping header) and on_dead runs before it is unmapped.
  SweepCounts sweep(const SweepPolicy& policy);

  // The collector's mark, kept in the first word of the object's mapping
  // header. mark() returns false when `object` was already marked for
  // `version`. kExclusive: one marker, world stopped; kShared: parallel
  // markers, one compare-exchange, so exactly one of them gets true.
  template <AccessMode M = AccessMode::kExclusive>
  static bool mark(const void* object, std::uint32_t version) noexcept {
    auto& word = mark_word(object);
    std::uint32_t seen = word.load(std::memory_order_relaxed);
    if (seen == version) return false;
    if constexpr (M == AccessMode::kShared) {
      while (!word.compare_exchange_weak(seen, version, std::memory_order_relaxed)) {
        if (seen == version) return false;
      }
    } else {
      word.store(version, std::memory_order_relaxed);
    }
    return true;
  }
  static bool is_marked(const void* object, std::uint32_t version) noexcept {
    return mark_word(object).load(std::memory_order_relaxed) == version;
  }

  template <class F>
  void for_each_object(F&& f) const {
    std::shared_lock lock(mutex_);
    for (const auto& [start, entry] : objects_) f(reinterpret_cast<void*>(start), entry.size);
  }

  LargeObjectStats stats() const;
  // Every object this space has mapped lies inside.
  AddressBounds bounds() const;

 private:
  struct Entry {
    std::size_t size;
    std::size_t mapping_size;
    bool published;
  };
  void unmap(std::uintptr_t start, const Entry& entry) noexcept;
  static std::atomic<std::uint32_t>& mark_word(const void* object) noexcept {
    return *reinterpret_cast<std::atomic<std::uint32_t>*>(const_cast<char*>(static_cast<const char*>(object)) -
                                                          kHeaderSize);
  }

  HeapBudget& budget_;
  mutable std::shared_mutex mutex_;
  std::mutex sweep_mutex_;  // one sweep at a time
  std::map<std::uintptr_t, Entry> objects_;
  LargeObjectStats counters_;
  AddressBounds bounds_;
};

}  // namespace handoff
