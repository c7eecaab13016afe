// A directory: every block of one size class, and the claims on them.
//
// Concurrency design.
//   What it protects: which thread may touch a block's free list and bits.
//   The registry is an append-mostly array of atomic block pointers in
//   fixed segments; appends (and slot reuse) happen under the directory
//   lock, reads are lock-free (seq_cst loads: step A2 of papers/handoff.md),
//   so a scanning allocator never blocks a sweeper or another allocator.
//
//   Who owns a block is decided only by its state word (marked_block.h):
//     claim:        SWEPT|EMPTY|UNSWEPT --CAS--> OWNED(me)       allocator
//     sweep:        FULL|SWEPT|UNSWEPT  --CAS--> SWEEPING(me)    sweeper
//     lazy begin:   FULL|SWEPT          --CAS--> UNSWEPT         reclaimer
//     give up:      OWNED(me) --store--> FULL|SWEPT               owner
//     finish sweep: SWEEPING(me) --store--> SWEPT|EMPTY          sweeper
//   A CAS that loses skips the block (invariant 2); nobody waits. OWNED and
//   SWEEPING are exclusive, so leaving them is a plain release store by the
//   holder. Acquire on the winning CAS pairs with the holder's release store,
//   so the new holder sees every bit the previous one wrote; TSan sees the
//   same edge because it is an ordinary atomic, not a fence.
//
//   Refill cost: a scan reads shared state words (no writes) and performs
//   one CAS on the block it takes. The scan position is private to each
//   local allocator (ClaimCursor) and restarts when the directory's cycle
//   counter moves (after a sweep), so the registry is walked about once per
//   cycle per allocator, as JSC's allocation cursor does; each allocator in
//   the direction of its lane ("Claim lanes" in directory.cpp).
//
//   Blocks leave a directory only through retire_empty_blocks: EMPTY ->
//   RETIRED by CAS, then the slot is cleared (seq_cst) and the block goes to
//   the limbo tagged with the epoch. A claim scan runs pinned (claim_scan
//   pins before its first slot load and unpins after its CAS; it is
//   noexcept), so a block whose pointer it read cannot be freed before it
//   unpins; the
//   scan's slot loads are seq_cst against the unlink store (epoch.h explains
//   the store-buffering argument). A claimed block is checked to belong to
//   this directory: that check can only fail if a block was freed and
//   recycled under a pinned reader, which the grace period forbids; with the
//   grace period switched off (the negative control) it is what fires.
//
// Call tree of a refill:
//   LocalAllocator::allocate_slow (owner thread, holds nothing)
//     -> give_up current block (store FULL|SWEPT)
//     -> Directory::try_claim    (pinned lock-free scan, one CAS)
//     -> MarkedBlock::sweep if the claimed block was UNSWEPT (unpinned: owned)
//     -> Directory::take_fresh_block (pool, then directory lock)
//
// Internal, never installed: what an embedder reads of a directory is its
// counters, AllocatorStats::classes (DirectoryStats, space_stats.h), and
// the stopped-world walks of mark_services.h (for_each_marked_small_cell,
// for_each_block_with_dirty_cards). The collector asks through those and
// Allocator::block_slots, never through this header
// (scripts/check_layers.py fails if a collector source includes it).
#pragma once

#include <handoff/allocator.h>  // DirectoryAccess::of
#include <handoff/atomic.h>
#include <handoff/epoch.h>  // load_registry_slot: block_at is inline
#include <handoff/liveness.h>
#include <handoff/marked_block.h>
#include <handoff/space_stats.h>  // DirectoryStats

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

namespace handoff {

class BlockPool;
// Internal (allocator/internal/handoff/): named here, defined there.
class Limbo;
// Private scan position of one local allocator: defined in
// local_allocator.h, which holds it by value.
struct ClaimCursor;

struct ClaimResult {
  MarkedBlock* block = nullptr;
  std::size_t cas_failures = 0;
  bool lazily_swept = false;
  SweepCounts swept;  // when lazily_swept
  // Claimed EMPTY: no cell is allocated (only a sweep that left none
  // publishes EMPTY), so the refill need not count the live bits.
  bool empty = false;
};

class Directory {
 public:
  Directory(std::size_t size_class, BlockPool& pool, EpochDomain& epochs);
  ~Directory();
  Directory(const Directory&) = delete;
  Directory& operator=(const Directory&) = delete;

  std::size_t size_class() const noexcept { return size_class_; }
  std::size_t cell_size() const noexcept { return class_size(size_class_); }

  // Refill: claims a block with free cells for `owner`, sweeping it first
  // when it was UNSWEPT. Lock-free; pins `self` during the scan; nullptr when
  // none is claimable.
  ClaimResult try_claim(ClaimCursor& cursor, std::uint32_t owner, EpochParticipant& self) noexcept;
  // The sweeper's step S1 for one UNSWEPT block: claims it (CAS to
  // SWEEPING), sweeps it with the lazy policy and publishes the result.
  // False when another thread took it first.
  bool sweep_unswept(MarkedBlock& block, SweepCounts& counts);
  // A new block from the pool, already OWNED by `owner`; nullptr on OOM.
  MarkedBlock* take_fresh_block(std::uint32_t owner) noexcept;

  // Eager sweep of every block nobody owns.
  SweepCounts sweep(const SweepPolicy& policy);
  // Lazy sweep: FULL and SWEPT blocks become UNSWEPT; claimers sweep them
  // with `policy`. begin requires that no refill is in flight (it rewrites
  // the stored policy that claimers read); see Allocator.
  std::size_t begin_lazy_sweep(const SweepPolicy& policy);
  SweepCounts finish_lazy_sweep();
  // Blocks the last begin_lazy_sweep made UNSWEPT: those allocators filled
  // since the collection before (after an eden collection; every non-empty
  // block after a full one), so about as many as they will claim again
  // before the next collection. The sweeper keeps that many EMPTY blocks
  // instead of retiring blocks the allocators would take back from the pool.
  std::size_t last_cycle_blocks() const noexcept { return last_cycle_blocks_.load(std::memory_order_relaxed); }
  // begin_lazy_sweep in parts, for a caller that walks the registry on
  // several threads (Allocator::begin_lazy_sweep with a ParallelFor; same
  // preconditions): set_lazy_policy on one thread; then
  // mark_unswept(first, last) for disjoint slot ranges, on any threads at
  // once (each pins); then end_lazy_sweep_begin on one thread, after every
  // part returned. Returns the blocks made UNSWEPT.
  void set_lazy_policy(const SweepPolicy& policy);
  std::size_t mark_unswept(std::size_t first, std::size_t last);
  void end_lazy_sweep_begin() noexcept;
  // S2: retires EMPTY blocks beyond the first `keep`, unless the limbo
  // already holds `limbo_cap` blocks. Safe beside refills.
  std::size_t retire_empty_blocks(std::size_t keep, Limbo& limbo, std::size_t limbo_cap);

  std::uint64_t cycle() const noexcept { return cycle_.load(std::memory_order_acquire); }
  std::size_t block_slots() const noexcept { return size_.load(std::memory_order_acquire); }
  // Block in slot i, or nullptr for an empty slot. Inline: every walk of
  // the registry (claim scans, each collection's passes) calls it per slot.
  // seq_cst: A2 of the protocol, ordered against the unlink store of S2.
  MarkedBlock* block_at(std::size_t i) const noexcept { return load_registry_slot(slot(i)); }
  // Callers outside this class pin first unless no block can be freed
  // meanwhile (tests with no sweeper, a stopped world).
  template <class F>
  void for_each_block(F&& f) const {
    const std::size_t n = block_slots();
    for (std::size_t i = 0; i < n; ++i) {
      if (MarkedBlock* b = block_at(i)) f(*b);
    }
  }

  DirectoryStats stats() const;

 private:
  static constexpr std::size_t kSegmentBits = 9;
  static constexpr std::size_t kSegmentSlots = std::size_t{1} << kSegmentBits;
  static constexpr std::size_t kMaxSegments = 4096;
  // kSegmentSlots registry slots, each an Atomic<MarkedBlock*> (atomic.h's
  // alias, internal).
  struct Segment : std::array<Atomic<MarkedBlock*>, kSegmentSlots> {};

  Atomic<MarkedBlock*>& slot(std::size_t i) const noexcept {
    Segment* segment = segments_[i >> kSegmentBits].load(std::memory_order_acquire);
    return (*segment)[i & (kSegmentSlots - 1)];
  }
  bool publish_locked(MarkedBlock* block);
  SweepCounts sweep_one(MarkedBlock& block, BlockStateWord seen, const SweepPolicy& policy);
  // Claims (CAS to SWEEPING) and sweeps every block whose state `accepts`.
  SweepCounts sweep_where(bool (*accepts)(BlockState), const SweepPolicy& policy);
  MarkedBlock* claim_scan(ClaimCursor& cursor, std::uint32_t owner, EpochParticipant& self,
                          ClaimResult& result) noexcept;
  void advance_cycle() noexcept { cycle_.fetch_add(1, std::memory_order_acq_rel); }

  const std::size_t size_class_;
  BlockPool& pool_;
  EpochDomain& epochs_;
  std::mutex mutex_;  // appends and slot reuse
  std::vector<std::size_t> free_slots_;
  std::array<std::atomic<Segment*>, kMaxSegments> segments_{};
  std::atomic<std::size_t> size_{0};
  std::atomic<std::uint64_t> cycle_{1};
  // One add per swept block, by every allocator that sweeps lazily and the
  // sweeper: on a cache line of its own, away from size_ and cycle_, which
  // every claim reads (false sharing between two threads' refills).
  alignas(64) std::atomic<std::uint64_t> freed_cells_total_{0};
  // UNSWEPT blocks: added by each begin part, less one at every CAS out of
  // UNSWEPT (a lazy claim, S1, sweep_where), on the line those sweeps
  // already write. Zero lets finish_lazy_sweep skip its walk (directory.cpp).
  std::atomic<std::size_t> unswept_left_{0};
  alignas(64) std::atomic<const SweepPolicy*> lazy_policy_{nullptr};
  std::atomic<std::size_t> last_cycle_blocks_{0};  // a hint: relaxed
  // Blocks the parts of the current begin_lazy_sweep made UNSWEPT so far;
  // end_lazy_sweep_begin (after every part returned) publishes the sum as
  // last_cycle_blocks_.
  std::atomic<std::size_t> unswept_in_cycle_{0};
  SweepPolicy lazy_storage_;  // what lazy_policy_ points to
};

// The directory of size class `size_class` of `heap`. Allocator keeps its
// directories private (an embedder could do nothing with this type); the
// allocator's own sources, its tests and benchmarks reach them here.
struct DirectoryAccess {
  static Directory& of(Allocator& heap, std::size_t size_class) noexcept { return *heap.directories_[size_class]; }
};
inline Directory& directory_of(Allocator& heap, std::size_t size_class) noexcept {
  return DirectoryAccess::of(heap, size_class);
}

}  // namespace handoff
