// The limbo: retired blocks wait out their grace period (S2 -> S4 of
// papers/handoff.md). Pushing and counting, reclaim freeing nothing while a
// thread pinned before the retire stays pinned, two advances after the
// unpin at most, release_all at heap destruction, and the pool's accounting.
#include "reclaim_support.h"
#include "test_support.h"

#include <handoff/block_pool.h>
#include <handoff/epoch.h>
#include <handoff/limbo.h>
#include <handoff/marked_block.h>

#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>
#include <vector>

namespace handoff {
namespace {

class LimboTest : public ::testing::Test {
 protected:
  LimboTest() : budget_(0), pool_(AllocatorConfig{}, budget_) {}
  ~LimboTest() override { limbo_.release_all(pool_); }

  // A block handed out by the pool, formatted as RETIRED (what S2 leaves).
  MarkedBlock* retired_block() {
    const BlockPool::Acquired a = pool_.acquire();
    EXPECT_NE(a.memory, nullptr);
    if (a.memory == nullptr) return nullptr;
    MarkedBlock* block = MarkedBlock::format(a.memory, nullptr, 2, {a.generation, 0, BlockState::kRetired});
    pool_.publish(block);
    return block;
  }

  std::size_t in_use_blocks() const { return pool_.stats().in_use_bytes / kBlockSize; }

  HeapBudget budget_;
  BlockPool pool_;
  EpochDomain epochs_;
  Limbo limbo_;
};

TEST_F(LimboTest, StartsEmptyAndReclaimOfNothingFreesNothing) {
  EXPECT_EQ(limbo_.size(), 0u);
  const LimboStats s = limbo_.stats();
  EXPECT_EQ(s.size, 0u);
  EXPECT_EQ(s.retired, 0u);
  EXPECT_EQ(s.freed, 0u);
  EXPECT_EQ(limbo_.reclaim(epochs_, pool_), 0u);
  limbo_.release_all(pool_);
  EXPECT_EQ(limbo_.stats().freed, 0u);
}

TEST_F(LimboTest, PushCountsBlocks) {
  for (int i = 0; i < 3; ++i) limbo_.push(retired_block(), epochs_.epoch());
  EXPECT_EQ(limbo_.size(), 3u);
  LimboStats s = limbo_.stats();
  EXPECT_EQ(s.size, 3u);
  EXPECT_EQ(s.retired, 3u);
  EXPECT_EQ(s.freed, 0u);
  EXPECT_EQ(in_use_blocks(), 3u) << "a block in limbo is still handed out";
}

TEST_F(LimboTest, WithNobodyPinnedTwoReclaimsFreeEverything) {
  std::vector<MarkedBlock*> blocks;
  for (int i = 0; i < 4; ++i) {
    blocks.push_back(retired_block());
    limbo_.push(blocks.back(), epochs_.epoch());
  }
  const std::uint64_t tag = epochs_.epoch();
  EXPECT_EQ(limbo_.reclaim(epochs_, pool_), 0u) << "one advance is not a grace period";
  EXPECT_EQ(epochs_.epoch(), tag + 1);
  EXPECT_EQ(limbo_.size(), 4u);
  EXPECT_EQ(in_use_blocks(), 4u);
  EXPECT_EQ(limbo_.reclaim(epochs_, pool_), 4u);
  EXPECT_EQ(epochs_.epoch(), tag + 2);
  EXPECT_EQ(limbo_.size(), 0u);
  EXPECT_EQ(in_use_blocks(), 0u);
  const LimboStats s = limbo_.stats();
  EXPECT_EQ(s.retired, 4u);
  EXPECT_EQ(s.freed, 4u);
  for (MarkedBlock* b : blocks) EXPECT_FALSE(pool_.is_handed_out(b));
  EXPECT_TRUE(test::pool_identities_hold(pool_.stats()));
}

TEST_F(LimboTest, NothingIsFreedWhileAThreadPinnedBeforeTheRetireStaysPinned) {
  EpochParticipant* reader = epochs_.register_thread();
  reader->pin(epochs_.global());  // a refill scan in progress
  MarkedBlock* block = retired_block();
  const std::uint32_t generation = block->state().generation;
  limbo_.push(block, epochs_.epoch());
  std::size_t calls = 0;
  for (int i = 0; i < 50; ++i) {
    ++calls;
    EXPECT_EQ(limbo_.reclaim(epochs_, pool_), 0u) << "freed while a reader pinned before the retire is pinned";
  }
  EXPECT_EQ(limbo_.size(), 1u);
  EXPECT_EQ(in_use_blocks(), 1u);
  EXPECT_TRUE(pool_.is_handed_out(block));
  // The reader may still read the block: its header is intact.
  EXPECT_EQ(block->state().state, BlockState::kRetired);
  EXPECT_EQ(block->state().generation, generation);

  reader->unpin();
  std::size_t after_unpin = 0;
  std::size_t freed = 0;
  while (freed == 0 && after_unpin < 10) {
    ++after_unpin;
    ++calls;
    freed = limbo_.reclaim(epochs_, pool_);
  }
  EXPECT_EQ(freed, 1u);
  EXPECT_GE(calls, 2u) << "a grace period needs two advances";
  EXPECT_LE(after_unpin, 3u) << "took " << after_unpin << " reclaims after the reader unpinned";
  EXPECT_EQ(limbo_.size(), 0u);
  EXPECT_EQ(in_use_blocks(), 0u);
  EXPECT_FALSE(pool_.is_handed_out(block));
  epochs_.unregister_thread(reader);
}

TEST_F(LimboTest, ReclaimCallsNeededAfterTheUnpinWhenNoneRanWhilePinned) {
  EpochParticipant* reader = epochs_.register_thread();
  reader->pin(epochs_.global());
  limbo_.push(retired_block(), epochs_.epoch());
  reader->unpin();
  const auto [calls, freed] = test::reclaim_until_freed(limbo_, epochs_, pool_);
  EXPECT_EQ(freed, 1u);
  EXPECT_GE(calls, 2u) << "freed after fewer than two advances";
  EXPECT_LE(calls, 3u);
  epochs_.unregister_thread(reader);
}

TEST_F(LimboTest, AThreadThatPinsAfterTheFirstAdvanceDoesNotHoldTheBlock) {
  MarkedBlock* block = retired_block();
  limbo_.push(block, epochs_.epoch());
  ASSERT_EQ(limbo_.reclaim(epochs_, pool_), 0u);  // epoch = tag + 1
  EpochParticipant* late = epochs_.register_thread();
  late->pin(epochs_.global());  // cannot have read the unlinked pointer
  EXPECT_EQ(limbo_.reclaim(epochs_, pool_), 1u);
  EXPECT_FALSE(pool_.is_handed_out(block));
  late->unpin();
  epochs_.unregister_thread(late);
}

TEST_F(LimboTest, BlocksWithDifferentTagsAreFreedInTurn) {
  MarkedBlock* early = retired_block();
  limbo_.push(early, epochs_.epoch());  // tag 0
  ASSERT_EQ(limbo_.reclaim(epochs_, pool_), 0u);  // epoch 1
  MarkedBlock* late = retired_block();
  limbo_.push(late, epochs_.epoch());  // tag 1
  EXPECT_EQ(limbo_.reclaim(epochs_, pool_), 1u);  // epoch 2: only the early one
  EXPECT_FALSE(pool_.is_handed_out(early));
  EXPECT_TRUE(pool_.is_handed_out(late));
  EXPECT_EQ(limbo_.size(), 1u);
  EXPECT_EQ(limbo_.reclaim(epochs_, pool_), 1u);  // epoch 3
  EXPECT_FALSE(pool_.is_handed_out(late));
  EXPECT_EQ(limbo_.stats().freed, 2u);
}

TEST_F(LimboTest, PoolInUseDropsByOneBlockPerFreedBlock) {
  const std::size_t n = 6;
  for (std::size_t i = 0; i < n; ++i) limbo_.push(retired_block(), epochs_.epoch());
  const PoolStats before = pool_.stats();
  ASSERT_EQ(before.in_use_bytes, n * kBlockSize);
  limbo_.reclaim(epochs_, pool_);
  const std::size_t freed = limbo_.reclaim(epochs_, pool_);
  ASSERT_EQ(freed, n);
  const PoolStats after = pool_.stats();
  EXPECT_EQ(before.in_use_bytes - after.in_use_bytes, freed * kBlockSize);
  EXPECT_EQ(after.blocks_released - before.blocks_released, freed);
  EXPECT_EQ(budget_.charged(), 0u) << "freed blocks are uncharged";
  EXPECT_TRUE(test::pool_identities_hold(after));
}

TEST_F(LimboTest, ReleaseAllFreesEverythingRegardlessOfPins) {
  EpochParticipant* reader = epochs_.register_thread();
  reader->pin(epochs_.global());
  for (int i = 0; i < 5; ++i) limbo_.push(retired_block(), epochs_.epoch());
  limbo_.reclaim(epochs_, pool_);
  EXPECT_EQ(limbo_.size(), 5u);
  limbo_.release_all(pool_);
  EXPECT_EQ(limbo_.size(), 0u);
  EXPECT_EQ(limbo_.stats().freed, 5u);
  EXPECT_EQ(limbo_.stats().retired, 5u);
  EXPECT_EQ(in_use_blocks(), 0u);
  reader->unpin();
  epochs_.unregister_thread(reader);
}

TEST_F(LimboTest, FreedBlocksComeBackFromThePoolWithANewGeneration) {
  std::vector<std::pair<MarkedBlock*, std::uint32_t>> retired;
  for (int i = 0; i < 3; ++i) {
    MarkedBlock* b = retired_block();
    retired.emplace_back(b, b->state().generation);
    limbo_.push(b, epochs_.epoch());
  }
  while (limbo_.size() != 0) limbo_.reclaim(epochs_, pool_);
  std::vector<BlockPool::Acquired> again;
  for (int i = 0; i < 3; ++i) again.push_back(pool_.acquire());
  for (const BlockPool::Acquired& a : again) {
    bool found = false;
    for (auto& [b, g] : retired) {
      if (a.memory == b) {
        EXPECT_EQ(a.generation, g + 1);
        found = true;
      }
    }
    EXPECT_TRUE(found) << "the pool reuses released blocks before carving new ones";
  }
  for (const BlockPool::Acquired& a : again) pool_.release(a.memory);
}

// Retiring threads push while a reclaimer frees; a pinned reader holds back
// only what was retired while it was pinned.
TEST(LimboConcurrency, PushersAndAReclaimerAgreeOnTheCounts) {
  HeapBudget budget(0);
  BlockPool pool(AllocatorConfig{}, budget);
  EpochDomain epochs;
  Limbo limbo;
  const std::size_t per_thread = test::scaled(200, 60);
  const unsigned pushers = test::thread_count();
  std::atomic<unsigned> done{0};
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < pushers; ++t) {
    threads.emplace_back([&] {
      EpochParticipant* self = epochs.register_thread();
      for (std::size_t i = 0; i < per_thread; ++i) {
        self->pin(epochs.global());
        const BlockPool::Acquired a = pool.acquire();
        if (a.memory == nullptr) {
          ADD_FAILURE() << "pool out of memory";
          self->unpin();
          break;
        }
        MarkedBlock* b = MarkedBlock::format(a.memory, nullptr, 1, {a.generation, 0, BlockState::kRetired});
        pool.publish(b);
        self->unpin();
        limbo.push(b, epochs.epoch());
      }
      epochs.unregister_thread(self);
      done.fetch_add(1);
    });
  }
  std::size_t freed = 0;
  while (done.load() < pushers) {
    freed += limbo.reclaim(epochs, pool);
    std::this_thread::yield();
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < 3; ++i) freed += limbo.reclaim(epochs, pool);
  const std::size_t total = per_thread * pushers;
  EXPECT_EQ(freed, total) << "nobody is registered any more: three reclaims free everything";
  EXPECT_EQ(limbo.size(), 0u);
  EXPECT_EQ(limbo.stats().retired, total);
  EXPECT_EQ(limbo.stats().freed, total);
  EXPECT_EQ(pool.stats().in_use_bytes, 0u);
}

}  // namespace
}  // namespace handoff
