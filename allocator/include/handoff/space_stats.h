// What the allocator's two spaces, the block pool and the large-object
// space, share and report through Allocator: the committed-bytes budget
// both charge (Allocator::budget()), the address range they have mapped
// (Allocator::bounds()) and their counters (AllocatorStats::pool, ::large),
// and the counters of each size class's directory (AllocatorStats::classes).
// Public because Allocator holds the budget and the stats by value; the
// spaces and the directories themselves (block_pool.h,
// large_object_space.h, directory.h) are internal headers, held through
// pointers.
#pragma once

#include <handoff/size_classes.h>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace handoff {

// The lowest address and one past the highest that a space has ever mapped
// for objects. A word outside them points into none of its memory: the
// conservative marker rejects it with two compares before any lookup (the
// filter of Boehm's GC_least/greatest_plausible_heap_addr). Never narrowed,
// so a stale range only costs lookups, never misses an object.
struct AddressBounds {
  std::uintptr_t low = UINTPTR_MAX;
  std::uintptr_t high = 0;

  void include(const void* begin, std::size_t bytes) noexcept {
    const auto b = reinterpret_cast<std::uintptr_t>(begin);
    low = b < low ? b : low;
    high = b + bytes > high ? b + bytes : high;
  }
  void include(const AddressBounds& other) noexcept {
    low = other.low < low ? other.low : low;
    high = other.high > high ? other.high : high;
  }
  bool contains(std::uintptr_t p) const noexcept { return p >= low && p < high; }
};

// Committed-bytes budget shared by the pool and the large-object space:
// enforces max_heap_bytes and carries the failure injector used by tests.
class HeapBudget {
 public:
  explicit HeapBudget(std::uint64_t limit) noexcept : limit_(limit) {}
  bool try_charge(std::size_t bytes) noexcept;
  void uncharge(std::size_t bytes) noexcept { charged_.fetch_sub(bytes, std::memory_order_relaxed); }
  std::size_t charged() const noexcept { return charged_.load(std::memory_order_relaxed); }
  std::uint64_t limit() const noexcept { return limit_; }
  // Test hook: the n-th charge from now (1 = the next one) fails as if the OS
  // had refused. 0 disarms.
  void fail_nth_charge(std::uint64_t n) noexcept { fail_countdown_.store(n, std::memory_order_relaxed); }

 private:
  std::uint64_t limit_;
  std::atomic<std::size_t> charged_{0};
  std::atomic<std::uint64_t> fail_countdown_{0};
};

// The pool reserves address space in chunks of this size, aligned to it
// (PoolStats::chunks counts them); blocks are carved from a chunk.
inline constexpr std::size_t kChunkSize = 4 * 1024 * 1024;
static_assert(kChunkSize % kBlockSize == 0);

struct PoolStats {
  std::size_t chunks = 0;
  std::size_t reserved_bytes = 0;
  std::size_t committed_bytes = 0;
  std::size_t in_use_bytes = 0;
  std::size_t cached_bytes = 0;
  std::size_t purged_bytes = 0;
  std::size_t resident_bytes = 0;
  std::uint64_t blocks_acquired = 0;
  std::uint64_t blocks_released = 0;
  std::uint64_t blocks_purged = 0;
  std::uint64_t acquire_failures = 0;
};

struct LargeObjectStats {
  std::size_t objects = 0;
  std::size_t object_bytes = 0;   // requested sizes
  std::size_t mapped_bytes = 0;   // whole mappings
  std::uint64_t allocated = 0;
  std::uint64_t freed = 0;
  std::uint64_t freed_bytes = 0;  // requested sizes of freed objects
};

// One directory (Directory::stats()); blocks_in_state is indexed by
// BlockState (marked_block.h).
struct DirectoryStats {
  std::size_t cell_size = 0;
  std::size_t blocks = 0;
  std::array<std::size_t, 8> blocks_in_state{};
  std::size_t live_cells = 0;      // over blocks not owned
  std::size_t capacity_cells = 0;  // over all blocks
  std::uint64_t freed_cells_total = 0;  // by every sweep of this directory so far
};

}  // namespace handoff
