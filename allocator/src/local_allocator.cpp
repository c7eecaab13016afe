#include <handoff/check.h>
#include <handoff/directory.h>
#include <handoff/epoch.h>
#include <handoff/error.h>
#include <handoff/local_allocator.h>
#include <handoff/mutant.h>

#include <iostream>
#include <string>

namespace handoff {

namespace {

using C = LocalAllocatorCounters;
constexpr CounterSpec<C> kCounters[] = {
    {"refills", &C::refills, "refills", "slow-path entries that needed a block"},
    {"claims", &C::claims, "claims", "blocks taken from the directory"},
    {"fresh_blocks", &C::fresh_blocks, "fresh blocks", "blocks taken from the pool"},
    {"lazy_sweeps", &C::lazy_sweeps, "lazy sweeps", "claimed blocks this thread swept"},
    {"lazily_freed_cells", &C::lazily_freed, "lazily freed cells", "cells those sweeps freed"},
    {"cas_failures", &C::cas_failures, "CAS failures", "claims lost to another thread"},
    {"cells_from_claims", &C::cells_from_claims, "cells from claims", "free cells in the blocks claimed"},
    {"last_block_reclaims", &C::last_block_reclaims, "last-block reclaims",
     "refills served by the block given up last (R1-R3)"},
};
static_assert(sizeof(kCounters) / sizeof(kCounters[0]) * sizeof(std::uint64_t) == sizeof(C),
              "every LocalAllocatorCounters field has a row in the table");

}  // namespace

std::span<const CounterSpec<LocalAllocatorCounters>> LocalAllocatorCounters::table() noexcept { return kCounters; }

LocalAllocatorCounters& LocalAllocatorCounters::operator+=(const LocalAllocatorCounters& o) noexcept {
  add_counters(*this, o, table());
  return *this;
}

LocalAllocatorCounters& LocalAllocatorCounters::operator-=(const LocalAllocatorCounters& o) noexcept {
  subtract_counters(*this, o, table());
  return *this;
}

void LocalAllocator::bind(Directory& directory, std::uint32_t owner, EpochParticipant& participant) noexcept {
  directory_ = &directory;
  owner_ = owner;
  participant_ = &participant;
  cursor_ = ClaimCursor{};
  cursor_.descending = ClaimCursor::lane_descends(owner);
}

void* LocalAllocator::allocate_slow() {
  if (void* cell = try_allocate_slow()) return cell;
  throw allocation_error(AllocationFailure::kNoBlock, directory_->cell_size());
}

void* LocalAllocator::try_allocate_slow() noexcept {
  if (!refill()) return nullptr;
  return free_list_.allocate([]() -> void* { return nullptr; });
}

bool LocalAllocator::refill() noexcept {
  give_up_current();
  ++counters_.refills;
  for (;;) {
    ClaimResult claim = reclaim_last_block();
    if (claim.block != nullptr) {
      ++counters_.last_block_reclaims;
    } else {
      claim = directory_->try_claim(cursor_, owner_, *participant_);
    }
    count_claim(claim);
    if (claim.block == nullptr) {
      claim.block = directory_->take_fresh_block(owner_);
      claim.empty = true;  // formatted with every cell free
      if (claim.block != nullptr) {
        ++counters_.fresh_blocks;
      } else {
        claim = rescan_before_failing();
        if (claim.block == nullptr) return false;
      }
    }
    MarkedBlock* block = claim.block;
    current_ = block;
    // A lazy sweep has just counted the live cells, and an EMPTY or fresh
    // block has none; other claims count them here, once for the accounting
    // and the free list both (build checks the count in debug builds).
    live_at_claim_ = claim.lazily_swept ? claim.swept.live_cells : claim.empty ? 0 : block->live_cell_count();
    list_at_claim_ = free_list_.build(*block, live_at_claim_);
    counters_.cells_from_claims += list_at_claim_;
    HANDOFF_EXPENSIVE((check_invariants(), true));
    if (list_at_claim_ != 0) return true;
    give_up_current();  // a lazily swept block with no free cell
  }
}

ClaimResult LocalAllocator::rescan_before_failing() noexcept {
  // The pool refused a block. Blocks given back behind our cursor since the
  // last sweep (by other threads) may still have free cells: one more full
  // pass before reporting out of memory.
  cursor_.rewind(directory_->block_slots());
  const ClaimResult claim = directory_->try_claim(cursor_, owner_, *participant_);
  count_claim(claim);
  return claim;
}

void LocalAllocator::count_claim(const ClaimResult& claim) noexcept {
  counters_.cas_failures += claim.cas_failures;
  if (claim.block == nullptr) return;
  ++counters_.claims;
  if (claim.lazily_swept) {
    ++counters_.lazy_sweeps;
    counters_.lazily_freed += claim.swept.freed_cells;
  }
}

ClaimResult LocalAllocator::reclaim_last_block() noexcept {
  ClaimResult claim;
  MarkedBlock* block = last_block_;
  if (block == nullptr) return claim;
  last_block_ = nullptr;
  // R2: no pin. The block may have been retired, freed, purged or recycled
  // into another directory since we gave it up; its memory is still mapped.
  const BlockStateWord seen = MarkedBlock::state_possibly_freed(block);
  // R3: the generation proves it is the block we gave up, not a recycling.
  if (seen.generation != last_generation_ && !HANDOFF_MUTANT(kReclaimWithoutGeneration)) return claim;
  if (seen.state != BlockState::kSwept && seen.state != BlockState::kEmpty) return claim;
  if (!MarkedBlock::try_transition_possibly_freed(block, seen, seen.with(BlockState::kOwned, owner_))) {
    return claim;
  }
  claim.block = block;
  claim.empty = seen.state == BlockState::kEmpty;
  return claim;
}

void LocalAllocator::give_up_current() noexcept {
  MarkedBlock* block = current_;
  if (block == nullptr) return;
  HANDOFF_EXPENSIVE((check_invariants(), true));
  // Every cell is now allocated except those still on the free list. Build
  // the final words locally and store each once: a concurrent lookup then
  // sees, per word, either the bits from before the claim or the final
  // ones, both subsets of the truth, never a free cell marked live.
  const bool full = free_list_.empty();
  if (full) {
    block->set_all_live();  // straight from the class's mask: no copy to build
  } else {
    AtomBitmap::Words live = block->cell_start_mask();
    free_list_.for_each_remaining_cell([&live](void* cell) {
      const std::size_t atom = MarkedBlock::atom_of(cell);
      live[atom / 64] &= ~(std::uint64_t{1} << (atom % 64));
    });
    block->live_bits().assign(live);
  }
  free_list_.clear();
  current_ = nullptr;
  const BlockStateWord mine = block->state(std::memory_order_relaxed);
  if (!full) {  // R1: come back for its free cells, cheaply
    last_block_ = block;
    last_generation_ = mine.generation;
    cursor_.revisit(block->registry_index());
  }
  HANDOFF_ASSERT(mine.state == BlockState::kOwned && mine.owner == (owner_ & BlockStateWord::kOwnerMask));
  // Release: whoever claims or sweeps the block next sees these bits.
  block->publish(mine.with(full ? BlockState::kFull : BlockState::kSwept));
}

void LocalAllocator::stop_allocating() noexcept { give_up_current(); }

LocalAllocator::Accounting LocalAllocator::accounting() const noexcept {
  Accounting a;
  if (current_ == nullptr) return a;
  a.capacity = current_->cell_count();
  a.live_at_claim = live_at_claim_;
  a.on_free_list = free_list_.remaining_cells();
  a.allocated = list_at_claim_ - a.on_free_list;
  return a;
}

void LocalAllocator::check_invariants() const {
  if (current_ == nullptr) return;
  const Accounting a = accounting();
  bool ok = a.balanced();
  free_list_.for_each_remaining_cell([&](void* cell) {
    ok = ok && !current_->live_bits().get(MarkedBlock::atom_of(cell)) && current_->cell_start(cell) == cell;
  });
  if (!ok) {
    current_->dump(std::cerr);
    std::cerr << "  local allocator: live_at_claim=" << a.live_at_claim << " allocated=" << a.allocated
              << " on_free_list=" << a.on_free_list << " capacity=" << a.capacity << "\n";
    HANDOFF_CHECK(false, "local allocator accounting does not balance");
  }
}

}  // namespace handoff
