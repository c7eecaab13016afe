#include <handoff/block_pool.h>
#include <handoff/block_range_map.h>
#include <handoff/check.h>
#include <handoff/platform.h>
#include <handoff/sanitizer.h>

#include <cstdint>


namespace handoff {

namespace detail {
std::atomic<std::uint8_t> block_range_map[kRangeMapSize];
}

namespace {

// Process-wide map: address -> Chunk*, two levels over the 47-bit user
// address space. Leaves are created on first use and never freed, so a
// lock-free reader never sees a leaf disappear. Entries are published with
// release and read with acquire.
class ChunkMap {
 public:
  static constexpr unsigned kChunkBits = 22;  // log2(kChunkSize)
  static_assert(kChunkBits == detail::kRangeMapShift, "the block range map has one byte per chunk");
  static constexpr unsigned kLeafBits = 12;
  static constexpr unsigned kTopBits = 47 - kChunkBits - kLeafBits;
  using Leaf = std::array<std::atomic<Chunk*>, std::size_t{1} << kLeafBits>;

  // Immortal: lookups may run during static destruction, and the spare
  // chunk list must stay reachable for the process's life.
  static ChunkMap& instance() {
    static ChunkMap* map = new ChunkMap;
    return *map;
  }

  bool insert(const void* base, Chunk* chunk) {
    const auto key = reinterpret_cast<std::uintptr_t>(base) >> kChunkBits;
    if (key >> (kTopBits + kLeafBits) != 0) return false;  // beyond 47 bits
    std::lock_guard lock(mutex_);
    auto& top = top_[key >> kLeafBits];
    Leaf* leaf = top.load(std::memory_order_acquire);
    if (leaf == nullptr) {
      leaf = new Leaf();
      top.store(leaf, std::memory_order_release);
    }
    (*leaf)[key & ((1u << kLeafBits) - 1)].store(chunk, std::memory_order_release);
    detail::block_range_map[key].store(chunk != nullptr ? 1 : 0, std::memory_order_relaxed);
    return true;
  }

  void erase(const void* base) { insert(base, nullptr); }

  // Chunk metadata is type-stable: a lookup that raced with a pool's
  // destruction reads a recycled Chunk whose pool no longer matches.
  Chunk* new_chunk() {
    std::lock_guard lock(mutex_);
    if (spare_.empty()) return new Chunk();
    Chunk* chunk = spare_.back();
    spare_.pop_back();
    return chunk;
  }
  void recycle_chunk(Chunk* chunk) {
    chunk->pool.store(nullptr, std::memory_order_release);
    chunk->carved = 0;
    chunk->generation.fill(0);
    chunk->acquired.fill(0);
    for (auto& flag : chunk->in_use) flag.store(0, std::memory_order_relaxed);
    std::lock_guard lock(mutex_);
    spare_.push_back(chunk);
  }

  Chunk* find(const void* p) const noexcept {
    const auto key = reinterpret_cast<std::uintptr_t>(p) >> kChunkBits;
    if (key >> (kTopBits + kLeafBits) != 0) return nullptr;
    const Leaf* leaf = top_[key >> kLeafBits].load(std::memory_order_acquire);
    if (leaf == nullptr) return nullptr;
    return (*leaf)[key & ((1u << kLeafBits) - 1)].load(std::memory_order_acquire);
  }

 private:
  std::mutex mutex_;
  std::vector<Chunk*> spare_;
  std::array<std::atomic<Leaf*>, std::size_t{1} << kTopBits> top_{};
};

}  // namespace

bool HeapBudget::try_charge(std::size_t bytes) noexcept {
  // Failure injection: count down, fail exactly when reaching 1 -> 0.
  std::uint64_t n = fail_countdown_.load(std::memory_order_relaxed);
  while (n != 0) {
    if (fail_countdown_.compare_exchange_weak(n, n - 1, std::memory_order_relaxed)) {
      if (n == 1) return false;
      break;
    }
  }
  std::size_t before = charged_.load(std::memory_order_relaxed);
  do {
    // Compare without forming before + bytes, which can wrap.
    if (limit_ != 0 && (bytes > limit_ || before > limit_ - bytes)) return false;
    if (bytes > SIZE_MAX - before) return false;
  } while (!charged_.compare_exchange_weak(before, before + bytes, std::memory_order_relaxed));
  return true;
}

BlockPool::BlockPool(const AllocatorConfig& config, HeapBudget& budget)
    : config_(config), budget_(budget) {}

BlockPool::~BlockPool() {
  std::lock_guard lock(mutex_);
  for (Chunk* chunk : chunks_) {
    ChunkMap::instance().erase(chunk->base);
    HANDOFF_UNPOISON(chunk->base, kChunkSize);
    platform::release(chunk->base, kChunkSize);
    ChunkMap::instance().recycle_chunk(chunk);
  }
}

void* BlockPool::carve_locked() noexcept {
  if (chunks_.empty() || chunks_.back()->carved == kBlocksPerChunk) {
    void* base = platform::reserve_aligned(kChunkSize, kChunkSize);
    if (base == nullptr) return nullptr;
    Chunk* chunk = ChunkMap::instance().new_chunk();
    chunk->base = static_cast<char*>(base);
    chunk->pool.store(this, std::memory_order_release);
    if (!ChunkMap::instance().insert(base, chunk)) {
      platform::release(base, kChunkSize);
      ChunkMap::instance().recycle_chunk(chunk);
      return nullptr;
    }
    chunks_.push_back(chunk);
    bounds_.include(base, kChunkSize);
  }
  Chunk* chunk = chunks_.back();
  char* block = chunk->base + chunk->carved * kBlockSize;
  if (!platform::commit(block, kBlockSize)) return nullptr;
  ++chunk->carved;
  return block;
}

BlockPool::Acquired BlockPool::acquire() noexcept {
  if (!budget_.try_charge(kBlockSize)) {
    std::lock_guard lock(mutex_);
    ++counters_.acquire_failures;
    return {};
  }
  std::lock_guard lock(mutex_);
  void* block = nullptr;
  if (!cached_.empty()) {
    block = cached_.back().block;
    cached_.pop_back();
  } else if (!purged_.empty()) {
    block = purged_.back();
    purged_.pop_back();
  } else {
    block = carve_locked();
  }
  if (block == nullptr) {
    budget_.uncharge(kBlockSize);
    ++counters_.acquire_failures;
    return {};
  }
  Chunk* chunk = chunk_of_mutable(block);
  const std::size_t index = chunk->index_of(block);
  // Generation 0 is what a purged header reads as; never hand it out.
  std::uint32_t generation = chunk->generation[index] + 1;
  if (generation == 0) generation = 1;
  chunk->generation[index] = generation;
  chunk->acquired[index] = 1;
  ++in_use_blocks_;
  ++counters_.blocks_acquired;
  HANDOFF_UNPOISON(block, kBlockSize);
  return {block, generation};
}

void BlockPool::publish(void* block) noexcept {
  Chunk* chunk = chunk_of_mutable(block);
  HANDOFF_CHECK(chunk != nullptr, "published block is not from this pool");
  chunk->in_use[chunk->index_of(block)].store(1, std::memory_order_release);
}

void BlockPool::release(void* block) noexcept {
  HANDOFF_CHECK((reinterpret_cast<std::uintptr_t>(block) & (kBlockSize - 1)) == 0,
                "released pointer is not a block");
  const auto now = Clock::now();
  {
    std::lock_guard lock(mutex_);
    Chunk* chunk = chunk_of_mutable(block);
    HANDOFF_CHECK(chunk != nullptr, "block released to a pool that does not own it");
    const std::size_t index = chunk->index_of(block);
    HANDOFF_CHECK(chunk->acquired[index] == 1, "block released twice");
    chunk->acquired[index] = 0;
    chunk->in_use[index].store(0, std::memory_order_release);
    --in_use_blocks_;
    ++counters_.blocks_released;
    HANDOFF_POISON(block, kBlockSize);
    cached_.push_back({block, now});
    purge_locked(now, false);
  }
  budget_.uncharge(kBlockSize);
}

std::size_t BlockPool::purge(bool force) noexcept {
  std::lock_guard lock(mutex_);
  return purge_locked(Clock::now(), force);
}

std::size_t BlockPool::purge_locked(Clock::time_point now, bool force) noexcept {
  const auto delay = std::chrono::milliseconds(config_.purge_delay_ms);
  const std::size_t keep = force ? 0 : config_.pool_keep_blocks;
  std::size_t purged = 0;
  // The front of the deque holds the blocks idle the longest.
  while (cached_.size() > keep && (force || now - cached_.front().since >= delay)) {
    void* block = cached_.front().block;
    cached_.pop_front();
    platform::purge(block, kBlockSize);
    purged_.push_back(block);
    ++purged;
  }
  counters_.blocks_purged += purged;
  return purged;
}

Chunk* BlockPool::chunk_of_mutable(const void* p) const noexcept {
  Chunk* chunk = ChunkMap::instance().find(p);
  return chunk != nullptr && chunk->pool.load(std::memory_order_acquire) == this ? chunk : nullptr;
}

const Chunk* BlockPool::chunk_of(const void* p) const noexcept { return chunk_of_mutable(p); }

bool BlockPool::is_handed_out(const void* p) const noexcept {
  const Chunk* chunk = chunk_of(p);
  if (chunk == nullptr) return false;
  const std::size_t index = chunk->index_of(p);
  return chunk->in_use[index].load(std::memory_order_acquire) == 1;
}

AddressBounds BlockPool::bounds() const {
  std::lock_guard lock(mutex_);
  return bounds_;
}

PoolStats BlockPool::stats() const {
  std::lock_guard lock(mutex_);
  PoolStats s = counters_;
  s.chunks = chunks_.size();
  s.reserved_bytes = chunks_.size() * kChunkSize;
  for (const Chunk* chunk : chunks_) s.committed_bytes += chunk->carved * kBlockSize;
  s.in_use_bytes = in_use_blocks_ * kBlockSize;
  s.cached_bytes = cached_.size() * kBlockSize;
  s.purged_bytes = purged_.size() * kBlockSize;
  s.resident_bytes = s.in_use_bytes + s.cached_bytes;
  return s;
}

}  // namespace handoff
