#include <handoff/large_object_space.h>
#include <handoff/platform.h>

#include <limits>
#include <new>
#include <vector>

namespace handoff {
namespace {

std::size_t mapping_size_for(std::size_t size) noexcept {
  const std::size_t page = platform::page_size();
  return (size + LargeObjectSpace::kHeaderSize + page - 1) & ~(page - 1);
}

}  // namespace

LargeObjectSpace::~LargeObjectSpace() {
  for (const auto& [start, entry] : objects_) unmap(start, entry);
}

std::size_t LargeObjectSpace::max_request() noexcept {
  return std::numeric_limits<std::size_t>::max() - kHeaderSize - platform::page_size();
}

AllocationFailure LargeObjectSpace::refusal(std::size_t size) noexcept {
  if (size > max_request()) return AllocationFailure::kSizeOverflow;
  // More than the machine has (platform.h): refused before any reservation,
  // which overcommit would grant.
  if (mapping_size_for(size) > platform::backable_bytes()) return AllocationFailure::kUnbackable;
  return AllocationFailure::kNone;
}

Allocation LargeObjectSpace::allocate(std::size_t size, bool publish) noexcept {
  if (const AllocationFailure refused = refusal(size); refused != AllocationFailure::kNone) return {nullptr, refused};
  const std::size_t mapping = mapping_size_for(size);
  if (!budget_.try_charge(mapping)) return {nullptr, AllocationFailure::kNoMapping};
  void* base = platform::reserve_aligned(mapping, platform::page_size());
  if (base == nullptr || !platform::commit(base, mapping)) {
    if (base != nullptr) platform::release(base, mapping);
    budget_.uncharge(mapping);
    return {nullptr, AllocationFailure::kNoMapping};
  }
  const auto start = reinterpret_cast<std::uintptr_t>(base) + kHeaderSize;
  new (base) std::atomic<std::uint32_t>(0);  // the mark word: never marked
  std::unique_lock lock(mutex_);
  objects_.emplace(start, Entry{size, mapping, publish});
  bounds_.include(base, mapping);
  ++counters_.allocated;
  return {reinterpret_cast<void*>(start), AllocationFailure::kNone};
}

AddressBounds LargeObjectSpace::bounds() const {
  std::shared_lock lock(mutex_);
  return bounds_;
}

void LargeObjectSpace::publish(void* object) noexcept {
  std::unique_lock lock(mutex_);
  auto it = objects_.find(reinterpret_cast<std::uintptr_t>(object));
  if (it != objects_.end()) it->second.published = true;
}

void LargeObjectSpace::unmap(std::uintptr_t start, const Entry& entry) noexcept {
  platform::release(reinterpret_cast<void*>(start - kHeaderSize), entry.mapping_size);
  budget_.uncharge(entry.mapping_size);
}

void* LargeObjectSpace::find(const void* p) const noexcept {
  const auto address = reinterpret_cast<std::uintptr_t>(p);
  std::shared_lock lock(mutex_);
  auto it = objects_.upper_bound(address);
  if (it == objects_.begin()) return nullptr;
  --it;
  return address < it->first + it->second.size ? reinterpret_cast<void*>(it->first) : nullptr;
}

std::size_t LargeObjectSpace::size_of(const void* object) const noexcept {
  std::shared_lock lock(mutex_);
  auto it = objects_.find(reinterpret_cast<std::uintptr_t>(object));
  return it == objects_.end() ? 0 : it->second.size;
}

SweepCounts LargeObjectSpace::sweep(const SweepPolicy& policy) {
  std::lock_guard sweeping(sweep_mutex_);
  std::vector<std::uintptr_t> snapshot;
  {
    std::shared_lock lock(mutex_);
    snapshot.reserve(objects_.size());
    for (const auto& [start, entry] : objects_) {
      if (entry.published) snapshot.push_back(start);
    }
  }
  SweepCounts counts;
  std::vector<std::uintptr_t> dead;
  for (std::uintptr_t start : snapshot) {
    void* object = reinterpret_cast<void*>(start);
    if (policy.keeps(object, mark_word(object).load(std::memory_order_relaxed))) {
      ++counts.live_cells;
    } else {
      policy.on_dead(object);
      dead.push_back(start);
    }
  }
  std::unique_lock lock(mutex_);
  for (std::uintptr_t start : dead) {
    auto it = objects_.find(start);
    counters_.freed_bytes += it->second.size;
    unmap(start, it->second);
    objects_.erase(it);
    ++counts.freed_cells;
    ++counters_.freed;
  }
  return counts;
}

LargeObjectStats LargeObjectSpace::stats() const {
  std::shared_lock lock(mutex_);
  LargeObjectStats s = counters_;
  s.objects = objects_.size();
  for (const auto& [start, entry] : objects_) {
    s.object_bytes += entry.size;
    s.mapped_bytes += entry.mapping_size;
  }
  return s;
}

}  // namespace handoff
