// The heap's state for the embedder API: external memory counters and the
// checked-handle slot table (external_memory.cpp, checked_handles.cpp).
//
// Concurrency: the external counters are atomics (relaxed): attach runs on
// mutators, release on whichever thread sweeps the owner (the concurrent
// sweeper too), and only sums are read. The slot table is guarded by its
// own mutex, which a collection takes (world stopped) to scan strong slots
// and clear weak ones. No thread holds it across a safepoint or a wait, so
// a stopped thread never holds it and the collection cannot deadlock on it.
#pragma once

#include <handoff/checked_handle.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <vector>

namespace handoff::detail {

struct ExternalCounters {
  std::atomic<std::uint64_t> bytes{0};           // attached now
  std::atomic<std::uint64_t> attached{0};        // attachments, ever
  std::atomic<std::uint64_t> released{0};
  std::atomic<std::uint64_t> since_full{0};      // bytes attached since the last full collection
};

// Invariant: a slot is in use iff it is not on free_slots; an in-use slot's
// generation is the one its handles carry; freeing a slot increments its
// generation (0 is never a live generation: the first is 1).
class CheckedHandleTable {
 public:
  enum class Freed : std::uint8_t { kNever, kCollected, kReleased };
  struct Slot {
    const void* object = nullptr;
    std::uint32_t generation = 1;
    HandleStrength strength = HandleStrength::kWeak;
    bool in_use = false;
    Freed freed = Freed::kNever;  // why the generation last moved on
  };

  std::mutex mutex;
  std::vector<Slot> slots;
  std::vector<std::uint32_t> free_slots;
  std::uint64_t in_use = 0;
  std::uint64_t cleared = 0;  // weak slots freed by collections
};

}  // namespace handoff::detail
