// The block pool: LIFO reuse, generations, purging with and without delay,
// the heap budget and its failure injector, lookups, accounting identities.
#include "test_support.h"

#include <handoff/block_pool.h>
#include <handoff/marked_block.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <random>
#include <set>
#include <thread>
#include <vector>

namespace handoff {
namespace {

using test::pool_identities_hold;
using test::raw_all_zero;
using test::raw_load_u64;

AllocatorConfig pool_config(std::uint64_t purge_delay_ms, std::uint64_t keep) {
  AllocatorConfig config;
  config.purge_delay_ms = purge_delay_ms;
  config.pool_keep_blocks = keep;
  return config;
}

constexpr std::uint64_t kHour = 3'600'000;

TEST(BlockPool, ReleasedBlocksComeBackLastInFirstOut) {
  HeapBudget budget(0);
  BlockPool pool(pool_config(kHour, 64), budget);
  void* a = pool.acquire().memory;
  void* b = pool.acquire().memory;
  void* c = pool.acquire().memory;
  ASSERT_TRUE(a && b && c);
  pool.release(a);
  pool.release(b);
  pool.release(c);
  EXPECT_EQ(pool.acquire().memory, c);
  EXPECT_EQ(pool.acquire().memory, b);
  EXPECT_EQ(pool.acquire().memory, a);
  EXPECT_TRUE(pool_identities_hold(pool.stats()));
  for (void* p : {a, b, c}) pool.release(p);
}

// The conservative marker's first filter: every block the pool hands out
// lies inside its bounds, which start empty and never shrink.
TEST(BlockPool, BoundsCoverEveryBlockItHandsOut) {
  HeapBudget budget(0);
  BlockPool pool(pool_config(kHour, 64), budget);
  EXPECT_FALSE(pool.bounds().contains(reinterpret_cast<std::uintptr_t>(&budget))) << "an empty pool's bounds hold nothing";
  std::vector<void*> blocks;
  for (std::size_t i = 0; i < kBlocksPerChunk + 3; ++i) blocks.push_back(pool.acquire().memory);  // two chunks
  const AddressBounds bounds = pool.bounds();
  for (void* block : blocks) {
    ASSERT_NE(block, nullptr);
    EXPECT_TRUE(bounds.contains(reinterpret_cast<std::uintptr_t>(block)));
    EXPECT_TRUE(bounds.contains(reinterpret_cast<std::uintptr_t>(block) + kBlockSize - 1));
  }
  EXPECT_FALSE(bounds.contains(reinterpret_cast<std::uintptr_t>(&budget))) << "a stack address";
  for (void* block : blocks) pool.release(block);
  EXPECT_EQ(pool.bounds().low, bounds.low) << "releasing blocks never narrows the bounds";
  EXPECT_EQ(pool.bounds().high, bounds.high);
}

TEST(BlockPool, GenerationGrowsOnEveryReuseAndIsNeverZero) {
  HeapBudget budget(0);
  BlockPool pool(pool_config(kHour, 64), budget);
  BlockPool::Acquired first = pool.acquire();
  ASSERT_NE(first.memory, nullptr);
  EXPECT_NE(first.generation, 0u);
  std::uint32_t generation = first.generation;
  for (int i = 0; i < 5; ++i) {
    pool.release(first.memory);
    const BlockPool::Acquired again = pool.acquire();
    ASSERT_EQ(again.memory, first.memory) << "the cached block is reused";
    EXPECT_EQ(again.generation, generation + 1);
    generation = again.generation;
  }
  // A purge must not reset the generation (it lives in the chunk side table).
  pool.release(first.memory);
  EXPECT_EQ(pool.purge(true), 1u);
  const BlockPool::Acquired after_purge = pool.acquire();
  ASSERT_EQ(after_purge.memory, first.memory);
  EXPECT_EQ(after_purge.generation, generation + 1);
  pool.release(after_purge.memory);
}

TEST(BlockPool, ForcedPurgeMovesCachedBlocksToPurgedAndTheyAreReused) {
  HeapBudget budget(0);
  BlockPool pool(pool_config(kHour, 64), budget);
  std::vector<void*> blocks;
  for (int i = 0; i < 3; ++i) blocks.push_back(pool.acquire().memory);
  for (void* b : blocks) {
    ASSERT_NE(b, nullptr);
    std::memset(b, 0x5A, kBlockSize);
  }
  for (void* b : blocks) pool.release(b);
  PoolStats s = pool.stats();
  EXPECT_EQ(s.cached_bytes, 3 * kBlockSize);
  EXPECT_EQ(s.purged_bytes, 0u);
  EXPECT_EQ(pool.purge(false), 0u) << "nothing is idle for an hour yet";
  EXPECT_EQ(pool.purge(true), 3u);
  s = pool.stats();
  EXPECT_EQ(s.cached_bytes, 0u);
  EXPECT_EQ(s.purged_bytes, 3 * kBlockSize);
  EXPECT_EQ(s.blocks_purged, 3u);
  EXPECT_TRUE(pool_identities_hold(s));
  for (void* b : blocks) {
    EXPECT_TRUE(raw_all_zero(b, kBlockSize)) << "a purged block reads back as zero bytes";
    EXPECT_EQ(BlockStateWord::unpack(raw_load_u64(b)).state, BlockState::kPooled);
    EXPECT_EQ(BlockStateWord::unpack(raw_load_u64(b)).generation, 0u);
  }
  std::set<void*> again;
  for (int i = 0; i < 3; ++i) {
    void* b = pool.acquire().memory;
    ASSERT_NE(b, nullptr);
    std::memset(b, 0x77, kBlockSize);  // writable after a purge
    again.insert(b);
  }
  EXPECT_EQ(again, std::set<void*>(blocks.begin(), blocks.end())) << "purged blocks are reused before carving";
  s = pool.stats();
  EXPECT_EQ(s.purged_bytes, 0u);
  EXPECT_EQ(s.committed_bytes, 3 * kBlockSize) << "no new memory was committed";
  EXPECT_TRUE(pool_identities_hold(s));
  for (void* b : again) pool.release(b);
}

TEST(BlockPool, ZeroDelayAndZeroKeepPurgesOnRelease) {
  HeapBudget budget(0);
  BlockPool pool(pool_config(0, 0), budget);
  void* b = pool.acquire().memory;
  ASSERT_NE(b, nullptr);
  std::memset(b, 0x33, kBlockSize);
  pool.release(b);
  const PoolStats s = pool.stats();
  EXPECT_EQ(s.cached_bytes, 0u);
  EXPECT_EQ(s.purged_bytes, kBlockSize);
  EXPECT_EQ(s.blocks_purged, 1u);
  EXPECT_TRUE(raw_all_zero(b, kBlockSize));
  EXPECT_TRUE(pool_identities_hold(s));
}

TEST(BlockPool, LongDelayKeepsReleasedBlocksCached) {
  HeapBudget budget(0);
  BlockPool pool(pool_config(kHour, 0), budget);
  void* b = pool.acquire().memory;
  ASSERT_NE(b, nullptr);
  std::memset(b, 0x33, kBlockSize);
  pool.release(b);
  EXPECT_EQ(pool.purge(false), 0u);
  const PoolStats s = pool.stats();
  EXPECT_EQ(s.cached_bytes, kBlockSize);
  EXPECT_EQ(s.purged_bytes, 0u);
  EXPECT_EQ(raw_load_u64(b), 0x3333333333333333ull) << "a cached block keeps its pages";
}

TEST(BlockPool, DelayedPurgeHappensOnceTheDelayHasPassed) {
  HeapBudget budget(0);
  BlockPool pool(pool_config(30, 0), budget);
  void* b = pool.acquire().memory;
  ASSERT_NE(b, nullptr);
  pool.release(b);
  EXPECT_EQ(pool.stats().cached_bytes, kBlockSize) << "released just now: still cached";
  std::this_thread::sleep_for(std::chrono::milliseconds(60));
  EXPECT_EQ(pool.purge(false), 1u);
  EXPECT_EQ(pool.stats().purged_bytes, kBlockSize);
}

TEST(BlockPool, KeepBlocksStayResidentAndTheOldestIsPurgedFirst) {
  HeapBudget budget(0);
  BlockPool pool(pool_config(0, 2), budget);
  void* a = pool.acquire().memory;
  void* b = pool.acquire().memory;
  void* c = pool.acquire().memory;
  ASSERT_TRUE(a && b && c);
  for (void* p : {a, b, c}) std::memset(p, 0x11, kBlockSize);
  pool.release(a);
  pool.release(b);
  pool.release(c);
  const PoolStats s = pool.stats();
  EXPECT_EQ(s.cached_bytes, 2 * kBlockSize);
  EXPECT_EQ(s.purged_bytes, kBlockSize);
  EXPECT_TRUE(raw_all_zero(a, kBlockSize)) << "the block idle longest is purged";
  EXPECT_EQ(raw_load_u64(b), 0x1111111111111111ull);
  EXPECT_EQ(raw_load_u64(c), 0x1111111111111111ull);
  EXPECT_EQ(pool.purge(false), 0u) << "the two kept blocks stay";
  EXPECT_EQ(pool.purge(true), 2u) << "unless forced";
}

TEST(BlockPool, AccountingIdentitiesHoldThroughARandomSequence) {
  HeapBudget budget(0);
  BlockPool pool(pool_config(0, 4), budget);
  std::mt19937_64 rng(7);
  std::vector<void*> held;
  for (int step = 0; step < 2000; ++step) {
    const unsigned op = static_cast<unsigned>(rng() % 10);
    if (op < 6 || held.empty()) {
      void* b = pool.acquire().memory;
      ASSERT_NE(b, nullptr);
      held.push_back(b);
    } else if (op < 9) {
      const std::size_t i = rng() % held.size();
      pool.release(held[i]);
      held.erase(held.begin() + static_cast<std::ptrdiff_t>(i));
    } else {
      pool.purge(rng() % 2 == 0);
    }
    const PoolStats s = pool.stats();
    ASSERT_TRUE(pool_identities_hold(s)) << "step " << step;
    ASSERT_EQ(s.in_use_bytes, held.size() * kBlockSize) << "step " << step;
    ASSERT_EQ(budget.charged(), s.in_use_bytes) << "the budget is charged for blocks in use";
  }
  EXPECT_GE(pool.stats().chunks, 2u) << "the sequence should have needed a second chunk";
  for (void* b : held) pool.release(b);
  const PoolStats s = pool.stats();
  EXPECT_EQ(s.in_use_bytes, 0u);
  EXPECT_EQ(budget.charged(), 0u);
  EXPECT_EQ(s.blocks_acquired, s.blocks_released);
}

TEST(BlockPool, HeapLimitRefusesAcquisitionCleanly) {
  HeapBudget budget(4 * kBlockSize);
  BlockPool pool(pool_config(kHour, 64), budget);
  std::vector<void*> held;
  for (int i = 0; i < 4; ++i) {
    held.push_back(pool.acquire().memory);
    ASSERT_NE(held.back(), nullptr);
  }
  const BlockPool::Acquired refused = pool.acquire();
  EXPECT_EQ(refused.memory, nullptr);
  PoolStats s = pool.stats();
  EXPECT_EQ(s.acquire_failures, 1u);
  EXPECT_EQ(s.in_use_bytes, 4 * kBlockSize);
  EXPECT_EQ(budget.charged(), 4 * kBlockSize) << "a refused charge leaves nothing charged";
  pool.release(held.back());
  held.pop_back();
  EXPECT_NE(held.emplace_back(pool.acquire().memory), nullptr) << "freeing a block makes room";
  EXPECT_TRUE(pool_identities_hold(pool.stats()));
  for (void* b : held) pool.release(b);
}

TEST(HeapBudget, ChargesBeyondTheLimitAreRefusedAndLeaveNothingCharged) {
  HeapBudget budget(std::size_t{1} << 20);
  EXPECT_EQ(budget.limit(), std::size_t{1} << 20);
  EXPECT_TRUE(budget.try_charge(16 * 1024));
  EXPECT_FALSE(budget.try_charge(std::size_t{1} << 20)) << "would exceed the limit";
  EXPECT_EQ(budget.charged(), 16u * 1024);
  EXPECT_TRUE(budget.try_charge((std::size_t{1} << 20) - 16 * 1024)) << "exactly up to the limit is fine";
  budget.uncharge((std::size_t{1} << 20) - 16 * 1024);
  // A charge so large that charged + bytes wraps around must be refused too;
  // the large-object space passes such sizes for requests near max_request().
  const std::size_t huge = SIZE_MAX - 4095;
  EXPECT_FALSE(budget.try_charge(huge)) << "a charge larger than the whole limit was accepted (the sum wrapped)";
  EXPECT_EQ(budget.charged(), 16u * 1024);
}

TEST(BlockPool, FailureInjectorFailsExactlyTheNthCharge) {
  HeapBudget budget(0);
  BlockPool pool(pool_config(kHour, 64), budget);
  budget.fail_nth_charge(2);
  void* first = pool.acquire().memory;
  EXPECT_NE(first, nullptr);
  EXPECT_EQ(pool.acquire().memory, nullptr) << "the second charge fails";
  void* third = pool.acquire().memory;
  EXPECT_NE(third, nullptr) << "the injector fires once";
  EXPECT_EQ(pool.stats().acquire_failures, 1u);
  EXPECT_EQ(budget.charged(), 2 * kBlockSize);
  budget.fail_nth_charge(1);
  budget.fail_nth_charge(0);  // disarmed
  void* fourth = pool.acquire().memory;
  EXPECT_NE(fourth, nullptr);
  for (void* b : {first, third, fourth}) pool.release(b);
}

TEST(BlockPool, LookupsSeeOnlyPublishedBlocksOfThisPool) {
  HeapBudget budget(0);
  BlockPool pool(pool_config(kHour, 64), budget);
  BlockPool other(pool_config(kHour, 64), budget);
  void* b = pool.acquire().memory;
  ASSERT_NE(b, nullptr);
  char* inside = static_cast<char*>(b) + 1000;
  EXPECT_NE(pool.chunk_of(inside), nullptr);
  EXPECT_FALSE(pool.is_handed_out(inside)) << "not published yet";
  pool.publish(b);
  EXPECT_TRUE(pool.is_handed_out(inside));
  EXPECT_TRUE(pool.is_handed_out(b));
  EXPECT_EQ(other.chunk_of(inside), nullptr) << "another pool's block";
  EXPECT_FALSE(other.is_handed_out(inside));
  // Reserved but never carved: in the chunk, never handed out.
  const Chunk* chunk = pool.chunk_of(b);
  ASSERT_NE(chunk, nullptr);
  EXPECT_FALSE(pool.is_handed_out(chunk->base + kChunkSize - 1));
  int local = 0;
  EXPECT_EQ(pool.chunk_of(&local), nullptr);
  EXPECT_FALSE(pool.is_handed_out(&local));
  EXPECT_FALSE(pool.is_handed_out(nullptr));
  pool.release(b);
  EXPECT_FALSE(pool.is_handed_out(inside)) << "released blocks are not handed out";
  EXPECT_NE(pool.chunk_of(inside), nullptr) << "the range stays the pool's (type-stable memory)";
}

TEST(BlockPoolDeathTest, ReleasingABlockTwiceAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  HeapBudget budget(0);
  BlockPool pool(pool_config(kHour, 64), budget);
  void* b = pool.acquire().memory;
  ASSERT_NE(b, nullptr);
  pool.release(b);
  EXPECT_DEATH(pool.release(b), "released twice");
}

}  // namespace
}  // namespace handoff
