// Chaos points (test-hook builds only): every point of the handoff protocol
// fires where papers/handoff.md puts it, configure() turns them on and off,
// choices are replayable from the seed, and the protocol keeps every live
// object intact with delays injected at every point.
#include "test_support.h"

#include <handoff/allocator.h>
#include <handoff/chaos.h>

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#if defined(HANDOFF_TEST_HOOKS)

namespace handoff {
namespace {

constexpr std::size_t kClass = 2;  // 48-byte cells
constexpr std::size_t kCellBytes = 48;
constexpr std::size_t kKeptBytes = 64;  // another class
constexpr std::size_t kPoints = static_cast<std::size_t>(ChaosPoint::kCount);

using Counts = std::array<std::uint64_t, kPoints>;

Counts delays_now() {
  Counts c{};
  for (std::size_t i = 0; i < kPoints; ++i) c[i] = chaos::delays(static_cast<ChaosPoint>(i));
  return c;
}

std::uint64_t since(const Counts& before, ChaosPoint point) {
  const auto i = static_cast<std::size_t>(point);
  return chaos::delays(point) - before[i];
}

// Chaos is process-wide: every test turns it off again, pass or fail.
class ChaosTest : public ::testing::Test {
 protected:
  ~ChaosTest() override { chaos::configure({1, 0, 50}); }
};

// A full block given back and swept empty: the next refill must scan the
// registry (the block is not remembered, since it was full) and claim it.
void make_one_empty_block(Allocator& heap, ThreadAllocator& thread) {
  for (std::size_t i = 0; i < cells_per_block(kClass); ++i) thread.allocate(kCellBytes);
  thread.flush();
  auto keep_none = [](void*) { return false; };
  heap.sweep(keep_none);
  ASSERT_EQ(directory_of(heap, kClass).stats().blocks_in_state[static_cast<std::size_t>(BlockState::kEmpty)], 1u);
}

TEST_F(ChaosTest, PointNamesAreDistinct) {
  std::vector<std::string> names;
  for (std::size_t i = 0; i < kPoints; ++i) {
    const std::string name = chaos_point_name(static_cast<ChaosPoint>(i));
    EXPECT_NE(name, "invalid");
    for (const std::string& other : names) EXPECT_NE(name, other);
    names.push_back(name);
  }
  EXPECT_STREQ(chaos_point_name(ChaosPoint::kAfterPin), "after_pin");
  EXPECT_STREQ(chaos_point_name(ChaosPoint::kBeforeFree), "before_free");
  EXPECT_STREQ(chaos_point_name(ChaosPoint::kCount), "invalid");
}

TEST_F(ChaosTest, OffByDefaultAndWhenPerMillionIsZero) {
  chaos::configure({1, 0, 50});
  const Counts before = delays_now();
  for (std::size_t i = 0; i < kPoints; ++i) {
    for (int k = 0; k < 100; ++k) chaos::hit(static_cast<ChaosPoint>(i));
  }
  EXPECT_EQ(delays_now(), before);
}

TEST_F(ChaosTest, EveryPointFiresOnTheProtocolPathWhenTheChanceIsOne) {
  Allocator heap(test::default_config());
  ThreadAllocator thread(heap);
  make_one_empty_block(heap, thread);
  MarkedBlock* empty = nullptr;
  directory_of(heap, kClass).for_each_block([&](MarkedBlock& b) { empty = &b; });
  ASSERT_NE(empty, nullptr);

  chaos::configure({7, 1'000'000, 1});
  Counts before = delays_now();
  void* p = thread.allocate(kCellBytes);  // refill: pinned scan, one candidate, one CAS
  ASSERT_EQ(MarkedBlock::of(p), empty);
  EXPECT_EQ(thread.local_allocator(kClass).counters().claims, 1u);
  EXPECT_EQ(since(before, ChaosPoint::kAfterPin), 1u);
  EXPECT_EQ(since(before, ChaosPoint::kAfterReadCandidate), 1u);
  EXPECT_EQ(since(before, ChaosPoint::kBeforeClaimCas), 1u);
  EXPECT_EQ(since(before, ChaosPoint::kBetweenUnlinkAndRetire), 0u);
  EXPECT_EQ(since(before, ChaosPoint::kBeforeFree), 0u);

  thread.flush();
  auto keep_none = [](void*) { return false; };
  heap.sweep(keep_none);
  before = delays_now();
  ASSERT_EQ(heap.release_empty_blocks(), 1u);  // retire (S2), then free (S4)
  EXPECT_EQ(since(before, ChaosPoint::kBetweenUnlinkAndRetire), 1u);
  EXPECT_EQ(since(before, ChaosPoint::kBeforeFree), 1u);
  EXPECT_EQ(since(before, ChaosPoint::kAfterPin), 0u) << "retiring and freeing are not refills";

  // Off again: the same work adds nothing.
  chaos::configure({7, 0, 1});
  before = delays_now();
  make_one_empty_block(heap, thread);
  thread.allocate(kCellBytes);
  thread.flush();
  heap.sweep(keep_none);
  EXPECT_GE(heap.release_empty_blocks(), 1u);
  EXPECT_EQ(delays_now(), before);
}

TEST_F(ChaosTest, ReclaimThatFreesNothingDoesNotHitBeforeFree) {
  Allocator heap(test::default_config());
  ThreadAllocator thread(heap);
  make_one_empty_block(heap, thread);
  chaos::configure({3, 1'000'000, 1});
  const Counts before = delays_now();
  ASSERT_EQ(heap.retire_empty_blocks(0, SIZE_MAX), 1u);
  EXPECT_EQ(since(before, ChaosPoint::kBetweenUnlinkAndRetire), 1u);
  EXPECT_EQ(heap.reclaim_retired(), 0u) << "one advance is not a grace period";
  EXPECT_EQ(since(before, ChaosPoint::kBeforeFree), 0u);
  EXPECT_EQ(heap.reclaim_retired(), 1u);
  EXPECT_EQ(since(before, ChaosPoint::kBeforeFree), 1u);
}

TEST_F(ChaosTest, ChoicesAreReplayableFromTheSeed) {
  constexpr int kHits = 400;
  auto run = [](std::uint64_t seed) {
    chaos::configure({seed, 500'000, 1});
    const std::uint64_t before = chaos::delays(ChaosPoint::kBeforeClaimCas);
    for (int i = 0; i < kHits; ++i) chaos::hit(ChaosPoint::kBeforeClaimCas);
    return chaos::delays(ChaosPoint::kBeforeClaimCas) - before;
  };
  const std::uint64_t first = run(42);
  EXPECT_GT(first, 0u);
  EXPECT_LT(first, static_cast<std::uint64_t>(kHits)) << "half the hits should fire, not all";
  EXPECT_EQ(run(42), first) << "same seed, same thread: same choices";
  EXPECT_EQ(run(42), first);
}

TEST_F(ChaosTest, EveryHitOnEveryThreadFiresWhenTheChanceIsOne) {
  chaos::configure({9, 1'000'000, 1});
  const std::uint64_t before = chaos::delays(ChaosPoint::kAfterPin);
  constexpr int kHitsPerThread = 200;
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([] {
      for (int i = 0; i < kHitsPerThread; ++i) chaos::hit(ChaosPoint::kAfterPin);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(chaos::delays(ChaosPoint::kAfterPin) - before, 2u * kHitsPerThread) << "every hit on every thread fires";
}

// Mutators allocate, stamp, and drop some of their objects (an odd tag in
// the first word), while a reaper sweeps what was dropped and releases empty
// blocks, all with delays at every protocol point. No live object may ever
// be overwritten or freed.
TEST_F(ChaosTest, LiveObjectsSurviveWithDelaysAtEveryPoint) {
  chaos::configure({11, 200'000, 20});
  const Counts before = delays_now();
  Allocator heap(test::default_config());
  std::atomic<bool> stop{false};
  std::atomic<std::size_t> damaged{0};
  std::atomic<std::size_t> freed_blocks{0};
  const std::size_t rounds = test::scaled(1500, 1000);

  auto mutator = [&](std::uint64_t seed) {
    ThreadAllocator thread(heap);
    std::vector<std::pair<void*, std::uint64_t>> live;
    for (std::size_t r = 0; r < rounds; ++r) {
      for (int k = 0; k < 8; ++k) {
        // Kept objects live in their own class, so the dropped ones leave
        // whole blocks empty for the reaper to retire and free (and the
        // pool to hand out again, to either class).
        const bool keep = k == 0 && live.size() < 200;
        const std::size_t bytes = keep ? kKeptBytes : kCellBytes;
        void* p = thread.allocate(bytes);
        const std::uint64_t tag = (seed << 32) + r * 8 + static_cast<std::uint64_t>(k);
        auto* w = static_cast<std::uint64_t*>(p);
        w[0] = keep ? tag * 2 : tag * 2 + 1;  // even: live
        for (std::size_t i = 1; i < bytes / 8; ++i) w[i] = test::pattern_word(w[0], i);
        if (keep) live.emplace_back(p, w[0]);
      }
      thread.flush();
      for (const auto& [p, tag] : live) {
        const auto* w = static_cast<const std::uint64_t*>(p);
        bool ok = w[0] == tag;
        for (std::size_t i = 1; ok && i < kKeptBytes / 8; ++i) ok = w[i] == test::pattern_word(tag, i);
        if (!ok) damaged.fetch_add(1);
      }
    }
  };
  std::thread reaper([&] {
    auto keep_even = [](void* cell) { return *static_cast<const std::uint64_t*>(cell) % 2 == 0; };
    while (!stop.load()) {
      heap.sweep(keep_even);
      freed_blocks.fetch_add(heap.release_empty_blocks());
      std::this_thread::yield();
    }
  });
  std::vector<std::thread> mutators;
  for (unsigned t = 0; t + 1 < test::thread_count() || t == 0; ++t) mutators.emplace_back(mutator, t + 1);
  for (auto& t : mutators) t.join();
  stop.store(true);
  reaper.join();
  std::uint64_t fired = 0;
  for (std::size_t i = 0; i < kPoints; ++i) fired += since(before, static_cast<ChaosPoint>(i));
  // Every mutator has gone and handed its blocks back: a last reap, with
  // every point firing, finds the dropped objects' blocks empty, so retire
  // and free surely run here.
  chaos::configure({11, 1'000'000, 1});
  const Counts before_last = delays_now();
  auto keep_even = [](void* cell) { return *static_cast<const std::uint64_t*>(cell) % 2 == 0; };
  heap.sweep(keep_even);
  const std::size_t freed_last = heap.release_empty_blocks();
  chaos::configure({1, 0, 50});

  EXPECT_EQ(damaged.load(), 0u) << "a live object was overwritten";
  EXPECT_GT(fired, 0u) << "no delay was injected while the threads ran";
  EXPECT_GT(freed_blocks.load() + freed_last, 0u) << "no block was ever freed";
  EXPECT_EQ(since(before_last, ChaosPoint::kBeforeFree), freed_last) << "every block freed passes before_free";
  EXPECT_TRUE(test::block_identities_hold(heap));
  EXPECT_TRUE(test::budget_identity_holds(heap));
}

}  // namespace
}  // namespace handoff

#else  // !HANDOFF_TEST_HOOKS

TEST(Chaos, RequiresTestHooks) {
  GTEST_SKIP() << "chaos points are compiled only with -DHANDOFF_TEST_HOOKS=ON; "
                  "HANDOFF_CHAOS_POINT is a no-op in this build";
}

#endif
