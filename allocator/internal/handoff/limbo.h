// Limbo: retired blocks waiting out their grace period (S2 -> S4 of the
// handoff protocol, papers/handoff.md).
//
// Call tree:
//   Directory::retire_empty_blocks   EMPTY -> RETIRED (CAS), unlink (seq_cst
//     -> Limbo::push(block, tag=E)   store of null), tag with the epoch
//   ConcurrentSweeper / stopped world
//     -> Limbo::reclaim              EpochDomain::try_advance, then every
//          -> BlockPool::release     block whose tag is two epochs old
//
// The lock serialises pushes (any thread may retire) with reclaim; it is
// never taken on an allocation or refill path.
#pragma once

#include <handoff/reclaim_stats.h>

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

namespace handoff {

class BlockPool;
class EpochDomain;
class MarkedBlock;

class Limbo {
 public:
  void push(MarkedBlock* block, std::uint64_t tag);
  // Tries to advance the epoch, then frees every block whose grace period is
  // over. Returns the number freed.
  std::size_t reclaim(EpochDomain& epochs, BlockPool& pool);
  // Frees everything regardless of epochs (heap destruction only).
  void release_all(BlockPool& pool);
  std::size_t size() const;
  LimboStats stats() const;

 private:
  struct Retired {
    MarkedBlock* block;
    std::uint64_t tag;
  };
  mutable std::mutex mutex_;
  std::vector<Retired> blocks_;
  std::uint64_t retired_ = 0;
  std::uint64_t freed_ = 0;
};

}  // namespace handoff
