#include <handoff/allocator.h>
#include <handoff/block_pool.h>
#include <handoff/chaos.h>
#include <handoff/check.h>
#include <handoff/directory.h>
#include <handoff/epoch.h>
#include <handoff/large_object_space.h>
#include <handoff/limbo.h>
#include <handoff/mutant.h>
#include <handoff/platform.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>

namespace handoff {

Allocator::Allocator(AllocatorConfig config)
    : config_(config),
      budget_(config.max_heap_bytes),
      pool_(std::make_unique<BlockPool>(config_, budget_)),
      epochs_(std::make_unique<EpochDomain>()),
      limbo_(std::make_unique<Limbo>()),
      large_(std::make_unique<LargeObjectSpace>(budget_)) {
  for (std::size_t cls = 0; cls < kNumSizeClasses; ++cls) {
    directories_[cls] = std::make_unique<Directory>(cls, *pool_, *epochs_);
  }
}

Allocator::~Allocator() {
  std::size_t attached;
  {
    std::lock_guard lock(threads_mutex_);
    attached = threads_.size();
  }
  if (attached != 0) {
    std::fprintf(stderr,
                 "handoff: Allocator destroyed while %zu ThreadAllocator(s) are still attached; "
                 "destroy every ThreadAllocator before its Allocator\n",
                 attached);
    std::abort();
  }
  limbo_->release_all(*pool_);  // no thread is left to read a retired block
  for (auto& directory : directories_) directory.reset();
}

std::uint32_t Allocator::attach(ThreadAllocator* thread) {
  std::lock_guard lock(threads_mutex_);
  threads_.push_back(thread);
  const std::uint32_t owner = next_owner_;
  next_owner_ = (next_owner_ + 1) & BlockStateWord::kOwnerMask;
  if (next_owner_ == 0) next_owner_ = 1;
  return owner;
}

void Allocator::detach(ThreadAllocator* thread) {
  std::lock_guard lock(threads_mutex_);
  auto it = std::find(threads_.begin(), threads_.end(), thread);
  HANDOFF_CHECK(it != threads_.end(), "ThreadAllocator detached twice");
  threads_.erase(it);
}

std::size_t Allocator::block_slots() const noexcept {
  std::size_t slots = 0;
  for (const auto& directory : directories_) slots += directory->block_slots();
  return slots;
}

std::size_t Allocator::attached_threads() const {
  std::lock_guard lock(threads_mutex_);
  return threads_.size();
}

void Allocator::publish_counters(const LocalAllocatorCounters& delta) {
  std::lock_guard lock(threads_mutex_);
  published_ += delta;
}

SweepTotals Allocator::sweep(const SweepPolicy& policy) {
  SweepTotals totals;
  for (auto& directory : directories_) {
    const SweepCounts c = directory->sweep(policy);
    totals.blocks_swept += c.blocks;
    totals.live_cells += c.live_cells;
    totals.freed_cells += c.freed_cells;
    totals.freed_bytes += c.freed_cells * directory->cell_size();
  }
  const SweepCounts large = large_->sweep(policy);
  totals.live_large = large.live_cells;
  totals.freed_large = large.freed_cells;
  return totals;
}

void Allocator::begin_lazy_sweep(const SweepPolicy& policy) {
  begin_lazy_sweep(policy, [](std::size_t tasks, const std::function<void(std::size_t)>& run) {
    for (std::size_t i = 0; i < tasks; ++i) run(i);
  });
}

void Allocator::begin_lazy_sweep(const SweepPolicy& policy, const ParallelFor& parallel_for) {
  struct Part {
    Directory* directory;
    std::size_t first;
    std::size_t last;
  };
  std::vector<Part> parts;  // made before the cycle opens: running out of memory here changes nothing
  for (auto& directory : directories_) {
    const std::size_t slots = directory->block_slots();
    for (std::size_t first = 0; first < slots; first += kLazySweepPartSlots) {
      parts.push_back({directory.get(), first, std::min(slots, first + kLazySweepPartSlots)});
    }
  }
  if (lazy_sweep_open_.exchange(true, std::memory_order_acq_rel)) {
    throw Error(ErrorCode::kMisuse,
                "begin_lazy_sweep: the previous lazy sweep is still open; call finish_lazy_sweep() first");
  }
  for (auto& directory : directories_) directory->set_lazy_policy(policy);
  parallel_for(parts.size(), [&](std::size_t i) { parts[i].directory->mark_unswept(parts[i].first, parts[i].last); });
  for (auto& directory : directories_) directory->end_lazy_sweep_begin();
  // Large objects are judged now, eagerly: finish must not judge objects
  // allocated after begin, which the policy knows nothing about.
  const SweepCounts large = large_->sweep(policy);
  lazy_large_ = {large.live_cells, large.freed_cells};
}

SweepTotals Allocator::finish_lazy_sweep() {
  SweepTotals totals;
  for (auto& directory : directories_) {
    const SweepCounts c = directory->finish_lazy_sweep();
    totals.blocks_swept += c.blocks;
    totals.live_cells += c.live_cells;
    totals.freed_cells += c.freed_cells;
    totals.freed_bytes += c.freed_cells * directory->cell_size();
  }
  totals.live_large = lazy_large_.live_cells;
  totals.freed_large = lazy_large_.freed_cells;
  lazy_large_ = {};
  lazy_sweep_open_.store(false, std::memory_order_release);
  return totals;
}

std::size_t Allocator::reclaim_retired() { return limbo_->reclaim(*epochs_, *pool_); }

std::size_t Allocator::purge(bool force) { return pool_->purge(force); }

AddressBounds Allocator::bounds() const {
  AddressBounds b = pool_->bounds();
  b.include(large_->bounds());
  return b;
}

std::size_t Allocator::release_empty_blocks() {
  retire_empty_blocks(0, SIZE_MAX);
  // Two advances end the grace period of everything just retired, unless a
  // thread is pinned in a refill right now; then a later reclaim frees it.
  std::size_t freed = reclaim_retired();
  freed += reclaim_retired();
  freed += reclaim_retired();
  return freed;
}

std::size_t Allocator::retire_empty_blocks(std::size_t keep, std::size_t limbo_cap, bool keep_last_cycle) {
  std::size_t retired = 0;
  for (auto& directory : directories_) {
    const std::size_t demand = keep_last_cycle ? directory->last_cycle_blocks() : 0;
    retired += directory->retire_empty_blocks(std::max(keep, demand), *limbo_, limbo_cap);
  }
  return retired;
}

bool Allocator::contains(const void* p) const noexcept {
  return pool_->is_handed_out(p) || large_->find(p) != nullptr;
}

const MarkedBlock* Allocator::lookup_block(const void* p) const noexcept {
  // In a block of this pool that was handed out at some point, so its
  // memory is committed (type-stable from then on).
  if (!pool_->is_handed_out(p)) return nullptr;
  const MarkedBlock* block = MarkedBlock::of(p);
  if (HANDOFF_MUTANT(kFindCellUnprotected)) return block;
  // Unsanitized on purpose: the block may have been freed (poisoned) since
  // the check above; the state word is type-stable memory.
  const BlockState state = MarkedBlock::state_possibly_freed(block).state;
  if (state == BlockState::kPooled || state == BlockState::kRetired) return nullptr;
  return block;
}

void* Allocator::find_cell(const void* p) const noexcept {
  if (pool_->chunk_of(p) != nullptr) {
    std::optional<ScopedPin> pinned;
    if (!HANDOFF_MUTANT(kFindCellUnprotected)) pinned.emplace(*epochs_);
    const MarkedBlock* block = lookup_block(p);
    if (block == nullptr) return nullptr;
    HANDOFF_CHAOS_POINT(kLookup);
    void* cell = block->cell_start(p);
    if (cell == nullptr || !block->live_bits().get(MarkedBlock::atom_of(cell))) return nullptr;
    return cell;
  }
  return large_->find(p);
}

std::size_t Allocator::cell_size(const void* cell) const {
  if (pool_->chunk_of(cell) != nullptr) {
    ScopedPin pinned(*epochs_);  // the header is read after find_cell's pin ends
    if (cell != nullptr && find_cell(cell) == cell) return MarkedBlock::of(cell)->cell_size();
  } else if (cell != nullptr && find_cell(cell) == cell) {
    return large_->size_of(cell);
  }
  char address[32];
  std::snprintf(address, sizeof address, "%p", cell);
  throw Error(ErrorCode::kNotAHeapPointer,
              std::string(address) + " is not the start of an allocated cell of this heap");
}

}  // namespace handoff
