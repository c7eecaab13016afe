#include <handoff/block_pool.h>
#include <handoff/chaos.h>
#include <handoff/check.h>
#include <handoff/directory.h>
#include <handoff/epoch.h>
#include <handoff/limbo.h>
#include <handoff/local_allocator.h>  // ClaimCursor
#include <handoff/mutant.h>

namespace handoff {
namespace {

bool claimable(BlockState s) noexcept {
  return s == BlockState::kSwept || s == BlockState::kEmpty || s == BlockState::kUnswept;
}

bool sweepable(BlockState s) noexcept {
  if (HANDOFF_MUTANT(kEagerSweepAcceptsOwned) && s == BlockState::kOwned) return true;
  return s == BlockState::kFull || s == BlockState::kSwept || s == BlockState::kUnswept;
}

BlockState state_after_sweep(const MarkedBlock& block, std::size_t live) noexcept {
  if (live == 0) return BlockState::kEmpty;
  return live == block.cell_count() ? BlockState::kFull : BlockState::kSwept;
}

}  // namespace

Directory::Directory(std::size_t size_class, BlockPool& pool, EpochDomain& epochs)
    : size_class_(size_class), pool_(pool), epochs_(epochs) {
  HANDOFF_CHECK(size_class < kNumSizeClasses, "size class out of range");
}

Directory::~Directory() {
  const std::size_t n = block_slots();
  for (std::size_t i = 0; i < n; ++i) {
    if (MarkedBlock* block = block_at(i)) pool_.release(block);
  }
  for (auto& segment : segments_) delete segment.load(std::memory_order_relaxed);
}

// Claim lanes. Each local allocator scans the registry in the direction
// of its lane (ClaimCursor::lane_descends: owner ids alternate, so two
// threads attached in turn take opposite lanes): even lanes from the last
// slot down, odd ones from slot 0 up, restarting at their end with each
// cycle. Two reasons, both measured (papers/allocator.md, "Claim lanes"):
//  - Two allocators scanning the same way from the same end reach the
//    same slots at the same moment: one of them loses the CAS (4-5% of the
//    claims of 2-thread churn did) and both pull the same header lines
//    back and forth. From opposite ends they meet once per cycle.
//  - A lane reuses the blocks it filled in the last cycle, and no others.
//    When the directory holds more blocks than a cycle fills (the pool
//    keeps EMPTY blocks up to its budget), those stay EMPTY and untouched,
//    and the blocks left UNSWEPT are the ones the lane reaches first: the
//    mutator sweeps them lazily, not the pause. The order this replaces,
//    reversing every scan with each sweep pass so that the blocks filled
//    last were claimed first, made the one mutator claim the idle EMPTY
//    half of the directory every other cycle and left the UNSWEPT half to
//    finish_lazy_sweep in the pause; its cache benefit was within noise.
// The direction is a hint: any order claims correctly, since a claim is the
// CAS on the state word whichever slot the scan reaches first.
ClaimResult Directory::try_claim(ClaimCursor& cursor, std::uint32_t owner, EpochParticipant& self) noexcept {
  ClaimResult result;
  const std::uint64_t now = cycle();
  if (cursor.cycle != now) {
    cursor.cycle = now;
    cursor.rewind(block_slots());
  }
  MarkedBlock* block = claim_scan(cursor, owner, self, result);
  if (block == nullptr) return result;
  // Owned from here on: no pin needed to keep or sweep it.
  HANDOFF_CHECK(block->directory() == this,
                "claimed a block of another directory: a block was freed and recycled under a pinned reader");
  if (result.lazily_swept) {
    // The policy was published before the UNSWEPT store our CAS read.
    // (A throwing predicate ends the program here: noexcept, liveness.h.)
    unswept_left_.fetch_sub(HANDOFF_MUTANT(kUnsweptCountSubTwice) ? 2 : 1, std::memory_order_relaxed);
    result.swept = lazy_policy_.load(std::memory_order_acquire)->sweep(*block);
    freed_cells_total_.fetch_add(result.swept.freed_cells, std::memory_order_relaxed);
  }
  result.block = block;
  return result;
}

MarkedBlock* Directory::claim_scan(ClaimCursor& cursor, std::uint32_t owner, EpochParticipant& self,
                                   ClaimResult& result) noexcept {
  // A1 .. A7. The mutants switch the pin off for the whole scan, or drop it
  // between the state load and the CAS (test builds only).
  const bool pin = !HANDOFF_MUTANT(kClaimScanUnpinned);
  const bool unpin_before_cas = HANDOFF_MUTANT(kClaimUnpinBeforeCas);
  if (pin) self.pin(epochs_.global());
  HANDOFF_CHAOS_POINT(kAfterPin);
  MarkedBlock* claimed = nullptr;
  const std::size_t n = block_slots();
  while (claimed == nullptr && !cursor.done(n)) {
    MarkedBlock* block = block_at(cursor.step());  // A2
    if (block == nullptr) continue;
    HANDOFF_CHAOS_POINT(kAfterReadCandidate);
    const BlockStateWord seen = block->state();  // A3: pinned, so `block` is not freed
    if (!claimable(seen.state)) continue;
    if (unpin_before_cas) self.unpin();
    HANDOFF_CHAOS_POINT(kBeforeClaimCas);
    // A5: the one CAS of a refill; the generation is part of `seen`.
    if (block->try_transition(seen, seen.with(BlockState::kOwned, owner))) {
      result.lazily_swept = seen.state == BlockState::kUnswept;
      result.empty = seen.state == BlockState::kEmpty;
      claimed = block;
    } else {
      ++result.cas_failures;
    }
    if (unpin_before_cas && pin) self.pin(epochs_.global());
  }
  if (pin) self.unpin();  // A6/A7: a claimed block is OWNED, kept past the pin
  return claimed;
}

bool Directory::sweep_unswept(MarkedBlock& block, SweepCounts& counts) {
  const BlockStateWord seen = block.state();
  if (seen.state != BlockState::kUnswept) return false;
  if (!block.try_transition(seen, seen.with(BlockState::kSweeping))) return false;
  unswept_left_.fetch_sub(1, std::memory_order_relaxed);
  const SweepCounts c = sweep_one(block, seen, *lazy_policy_.load(std::memory_order_acquire));
  counts.live_cells += c.live_cells;
  counts.freed_cells += c.freed_cells;
  ++counts.blocks;
  return true;
}

bool Directory::publish_locked(MarkedBlock* block) {
  std::size_t index;
  if (!free_slots_.empty()) {
    index = free_slots_.back();
    free_slots_.pop_back();
  } else {
    index = size_.load(std::memory_order_relaxed);
    const std::size_t seg = index >> kSegmentBits;
    if (seg >= kMaxSegments) return false;
    if (segments_[seg].load(std::memory_order_relaxed) == nullptr) {
      segments_[seg].store(new Segment(), std::memory_order_release);
    }
  }
  block->set_registry_index(index);
  slot(index).store(block, std::memory_order_release);
  if (index == size_.load(std::memory_order_relaxed)) size_.store(index + 1, std::memory_order_release);
  return true;
}

MarkedBlock* Directory::take_fresh_block(std::uint32_t owner) noexcept {
  const BlockPool::Acquired acquired = pool_.acquire();
  if (acquired.memory == nullptr) return nullptr;
  MarkedBlock* block = MarkedBlock::format(acquired.memory, this, size_class_,
                                           {acquired.generation, owner, BlockState::kOwned});
  pool_.publish(block);
  std::lock_guard lock(mutex_);
  if (!publish_locked(block)) {
    pool_.release(block);
    return nullptr;
  }
  return block;
}

SweepCounts Directory::sweep_one(MarkedBlock& block, BlockStateWord seen, const SweepPolicy& policy) {
  SweepCounts counts;
  try {
    counts = policy.sweep(block);
  } catch (...) {
    // A predicate that throws: the block is published as what its live bits
    // now say (the cells judged dead are free, the rest allocated), so it
    // stays sweepable and claimable; never left SWEEPING.
    block.publish(seen.with(state_after_sweep(block, block.live_cell_count())));  // counts unknown: count
    advance_cycle();  // claim cursors that passed blocks swept before it see them again
    throw;
  }
  freed_cells_total_.fetch_add(counts.freed_cells, std::memory_order_relaxed);
  // Checked while we still hold SWEEPING: once published, another thread may
  // claim, fill and give the block back while a checker reads it.
  HANDOFF_EXPENSIVE((block.check_invariants(), true));
  HANDOFF_ASSERT(counts.live_cells == block.live_cell_count());
  block.publish(seen.with(state_after_sweep(block, counts.live_cells)));  // the sweep has counted them
  return counts;
}

SweepCounts Directory::sweep_where(bool (*accepts)(BlockState), const SweepPolicy& policy) {
  ScopedPin pinned(epochs_);  // this walk reads block pointers from the registry
  SweepCounts total;
  for_each_block([&](MarkedBlock& block) {
    const BlockStateWord seen = block.state();
    if (!accepts(seen.state)) return;
    if (!block.try_transition(seen, seen.with(BlockState::kSweeping))) return;
    if (seen.state == BlockState::kUnswept) unswept_left_.fetch_sub(1, std::memory_order_relaxed);
    const SweepCounts c = sweep_one(block, seen, policy);
    total.live_cells += c.live_cells;
    total.freed_cells += c.freed_cells;
    ++total.blocks;
  });
  advance_cycle();
  return total;
}

SweepCounts Directory::sweep(const SweepPolicy& policy) {
  return sweep_where(sweepable, policy);  // OWNED, SWEEPING, EMPTY: not ours to sweep
}

std::size_t Directory::begin_lazy_sweep(const SweepPolicy& policy) {
  set_lazy_policy(policy);
  const std::size_t marked = mark_unswept(0, block_slots());
  end_lazy_sweep_begin();
  return marked;
}

void Directory::set_lazy_policy(const SweepPolicy& policy) {
  lazy_storage_ = policy;
  lazy_policy_.store(&lazy_storage_, std::memory_order_release);
  unswept_in_cycle_.store(0, std::memory_order_relaxed);
}

void Directory::end_lazy_sweep_begin() noexcept {
  advance_cycle();
  last_cycle_blocks_.store(unswept_in_cycle_.load(std::memory_order_relaxed), std::memory_order_relaxed);
}

std::size_t Directory::mark_unswept(std::size_t first, std::size_t last) {
  ScopedPin pinned(epochs_);  // this walk reads block pointers from the registry
  std::size_t marked = 0;
  for (std::size_t i = first; i < last; ++i) {
    MarkedBlock* block = block_at(i);
    if (block == nullptr) continue;
    const BlockStateWord seen = block->state();
    if (seen.state != BlockState::kFull && seen.state != BlockState::kSwept) continue;
    // A block that the sweep would leave unchanged stays as it is: by
    // marks, after an eden collection, every block that received no new
    // cell since the last one (its survivors keep their marks).
    if (lazy_storage_.frees_nothing_in(*block)) continue;
    if (block->try_transition(seen, seen.with(BlockState::kUnswept))) ++marked;
  }
  unswept_in_cycle_.fetch_add(marked, std::memory_order_relaxed);
  if (!HANDOFF_MUTANT(kUnsweptCountMissesAdd)) unswept_left_.fetch_add(marked, std::memory_order_relaxed);
  return marked;
}

// Skips the walk when no block is UNSWEPT. Exact, because every change of
// unswept_left_ is one RMW made with the transition it counts: the adds of
// this cycle's begin parts happen before this call (they return before
// Allocator::begin_lazy_sweep does, and lazy_sweep_open_ orders begin and
// finish), and each subtraction follows a CAS out of UNSWEPT, whose block
// a walk would skip anyway. (A begin part that runs beside allocators, the
// allocator alone's ConcurrentSweeper::begin_cycle, may see a claim
// subtract before the part adds: the count wraps below zero for that
// moment, modulo 2^64, and reads right again once the part has added.)
// So zero, read here, means every block this cycle made UNSWEPT has left
// UNSWEPT; a stale read can only be higher, and then the walk runs.
SweepCounts Directory::finish_lazy_sweep() {
  const SweepPolicy* policy = lazy_policy_.load(std::memory_order_acquire);
  if (policy == nullptr) return {};
  if (unswept_left_.load(std::memory_order_relaxed) == 0) {
#if defined(HANDOFF_EXPENSIVE_CHECKS)
    ScopedPin pinned(epochs_);  // this walk reads block pointers from the registry
    for_each_block([](const MarkedBlock& block) {
      HANDOFF_CHECK(block.state().state != BlockState::kUnswept, "finish_lazy_sweep: an UNSWEPT block not counted");
    });
#endif
    return {};
  }
  return sweep_where([](BlockState s) { return s == BlockState::kUnswept; }, *policy);
}

std::size_t Directory::retire_empty_blocks(std::size_t keep, Limbo& limbo, std::size_t limbo_cap) {
  ScopedPin pinned(epochs_);  // this walk reads block pointers from the registry
  std::size_t kept = 0;
  std::size_t retired = 0;
  const std::size_t n = block_slots();
  for (std::size_t i = 0; i < n; ++i) {
    MarkedBlock* block = block_at(i);
    if (block == nullptr) continue;
    const BlockStateWord seen = block->state();
    if (seen.state != BlockState::kEmpty) continue;
    if (kept < keep) {
      ++kept;
      continue;
    }
    // A stalled reader must not make memory grow without bound: above the
    // cap, empty blocks stay here for reuse instead of waiting in limbo.
    if (limbo.size() >= limbo_cap) break;
    // S2. seq_cst: a lookup orders its load of the state word against this
    // CAS (Allocator::find_cell), as a refill orders its slot loads against
    // the unlink.
    if (!block->try_transition(seen, seen.with(BlockState::kRetired), std::memory_order_seq_cst)) continue;
    if (HANDOFF_MUTANT(kRetirePushBeforeUnlink)) {
      limbo.push(block, epochs_.epoch());
      HANDOFF_CHAOS_POINT(kBetweenUnlinkAndRetire);
      slot(i).store(nullptr, std::memory_order_seq_cst);
    } else {
      const std::uint64_t tag = unlink_registry_slot(slot(i), epochs_);  // tag read after the unlink
      HANDOFF_CHAOS_POINT(kBetweenUnlinkAndRetire);
      limbo.push(block, tag);
    }
    {
      std::lock_guard lock(mutex_);
      free_slots_.push_back(i);
    }
    ++retired;
  }
  if (retired != 0) advance_cycle();
  return retired;
}

DirectoryStats Directory::stats() const {
  ScopedPin pinned(epochs_);  // this walk reads block pointers from the registry
  DirectoryStats s;
  s.cell_size = cell_size();
  s.freed_cells_total = freed_cells_total_.load(std::memory_order_relaxed);
  for_each_block([&](const MarkedBlock& block) {
    const BlockState state = block.state().state;
    ++s.blocks;
    ++s.blocks_in_state[static_cast<std::size_t>(state)];
    s.capacity_cells += block.cell_count();
    if (state != BlockState::kOwned) s.live_cells += block.live_cell_count();
  });
  return s;
}

}  // namespace handoff
