// The block pool: reserves 4 MiB-aligned chunks from the OS, hands out 16 KiB
// blocks, takes them back, and returns idle blocks' pages to the OS after a
// tunable delay.
//
// Call tree:
//   Directory::take_fresh_block -> BlockPool::acquire  (pool lock)
//       cached block (LIFO) | purged block | carve + commit from a chunk
//   Limbo::reclaim (S4), Limbo::release_all, ~Directory,
//   Directory::take_fresh_block (publish failed)
//                               -> BlockPool::release  (pool lock)
//       cache it (poisoned under ASan); purge_locked() on the way out
//   Allocator::purge            -> BlockPool::purge    (pool lock)
//
// Block memory is type-stable: a chunk is never unmapped while its pool
// lives; a block leaving the pool's cache is only purged (MADV_DONTNEED), so
// its header reads back as zero bytes, which decode as BlockState::kPooled
// with generation 0, a state no claim accepts. Each block's generation lives
// in the chunk's side table, not in the block, so a purge cannot reset it.
//
// Accounting identities (of stats(); block_pool_test.cpp checks them with
// pool_identities_hold()):
//   committed == in_use + cached + purged
//   reserved  == chunks * kChunkSize  >= committed
//   resident  == in_use + cached      (an upper bound for this pool's pages)
//
// The chunk map is process-wide (several heaps may coexist): address ->
// chunk, two levels, lock-free to read. It answers "is this pointer in a
// block of this pool, and is that block handed out?" without touching the
// block itself, which may be poisoned or purged.
#pragma once

#include <handoff/size_classes.h>
#include <handoff/space_stats.h>  // HeapBudget, AddressBounds, PoolStats
#include <handoff/tunables.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <vector>

namespace handoff {

inline constexpr std::size_t kBlocksPerChunk = kChunkSize / kBlockSize;

class BlockPool;

struct Chunk {
  char* base = nullptr;
  // Read without the pool lock by lookups, which may race with the pool's
  // destruction on another heap; chunk metadata is recycled, never freed.
  std::atomic<const BlockPool*> pool{nullptr};
  std::size_t carved = 0;  // blocks committed so far (a prefix of the chunk)
  std::array<std::uint32_t, kBlocksPerChunk> generation{};  // pool lock
  std::array<std::uint8_t, kBlocksPerChunk> acquired{};     // pool lock
  // 1 while the block is handed out; read without the pool lock by lookups.
  std::array<std::atomic<std::uint8_t>, kBlocksPerChunk> in_use{};

  std::size_t index_of(const void* p) const noexcept {
    return static_cast<std::size_t>(static_cast<const char*>(p) - base) / kBlockSize;
  }
};

class BlockPool {
 public:
  using Clock = std::chrono::steady_clock;

  struct Acquired {
    void* memory = nullptr;  // nullptr: out of memory
    std::uint32_t generation = 0;
  };

  BlockPool(const AllocatorConfig& config, HeapBudget& budget);
  ~BlockPool();
  BlockPool(const BlockPool&) = delete;
  BlockPool& operator=(const BlockPool&) = delete;

  Acquired acquire() noexcept;
  // Marks an acquired block as handed out for lookups, once its header is
  // formatted (so a lookup that sees the flag sees a formatted header).
  void publish(void* block) noexcept;
  void release(void* block) noexcept;
  // Purges cached blocks idle for purge_delay_ms (all of them when `force`),
  // keeping pool_keep_blocks resident unless forced. Returns blocks purged.
  std::size_t purge(bool force = false) noexcept;

  // Chunk of this pool containing p, or nullptr. Lock-free.
  const Chunk* chunk_of(const void* p) const noexcept;
  // True when p lies in a block of this pool that is currently handed out.
  bool is_handed_out(const void* p) const noexcept;

  PoolStats stats() const;
  // Every chunk this pool has reserved lies inside (pool lock).
  AddressBounds bounds() const;

 private:
  struct Cached {
    void* block;
    Clock::time_point since;
  };

  void* carve_locked() noexcept;
  std::size_t purge_locked(Clock::time_point now, bool force) noexcept;
  Chunk* chunk_of_mutable(const void* p) const noexcept;

  const AllocatorConfig config_;
  HeapBudget& budget_;
  mutable std::mutex mutex_;
  std::vector<Chunk*> chunks_;
  std::deque<Cached> cached_;  // back = most recently released
  std::vector<void*> purged_;
  std::size_t in_use_blocks_ = 0;
  PoolStats counters_;
  AddressBounds bounds_;
};

}  // namespace handoff
