// The cache budget (cache_budget.h): the rule as a function, and the heap's
// trigger after collections that find almost nothing alive and after ones
// that find more.
#include "cache_budget.h"
#include "marker_threads.h"

#include <handoff/heap.h>

#include <gtest/gtest.h>

#include <atomic>
#include <barrier>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "tree_support.h"

namespace {

using handoff::detail::cache_budget_for_threads;
using handoff::detail::cache_budget_trigger;
using handoff::detail::kCacheBudgetSurvivalPermille;

constexpr std::uint64_t kMiB = 1 << 20;

TEST(CacheBudget, CapsTheTriggerOnlyWhenAlmostNothingSurvived) {
  const std::uint64_t allocated = 8 * kMiB;
  const std::uint64_t threshold = allocated / 1000 * kCacheBudgetSurvivalPermille;
  EXPECT_EQ(cache_budget_trigger(8 * kMiB, 0, allocated, 4 * kMiB), 4 * kMiB);
  EXPECT_EQ(cache_budget_trigger(8 * kMiB, threshold - 1, allocated, 4 * kMiB), 4 * kMiB);
  EXPECT_EQ(cache_budget_trigger(8 * kMiB, threshold, allocated, 4 * kMiB), 8 * kMiB);
  EXPECT_EQ(cache_budget_trigger(8 * kMiB, allocated, allocated, 4 * kMiB), 8 * kMiB);
}

TEST(CacheBudget, NeverRaisesTheTriggerAndZeroSwitchesItOff) {
  EXPECT_EQ(cache_budget_trigger(2 * kMiB, 0, 8 * kMiB, 4 * kMiB), 2 * kMiB);
  EXPECT_EQ(cache_budget_trigger(8 * kMiB, 0, 8 * kMiB, 0), 8 * kMiB);
  EXPECT_EQ(cache_budget_trigger(8 * kMiB, 0, 0, 4 * kMiB), 8 * kMiB) << "nothing allocated: nothing to judge";
  EXPECT_EQ(cache_budget_trigger(8 * kMiB, 0, 8 * kMiB, 1), 1u);
}

TEST(CacheBudget, GrowsWithTheAllocatingThreadsUpToTheCpus) {
  EXPECT_EQ(cache_budget_for_threads(4 * kMiB, 0, 2), 4 * kMiB) << "a cycle nobody allocated in: one thread's";
  EXPECT_EQ(cache_budget_for_threads(4 * kMiB, 1, 2), 4 * kMiB);
  EXPECT_EQ(cache_budget_for_threads(4 * kMiB, 2, 2), 8 * kMiB);
  EXPECT_EQ(cache_budget_for_threads(4 * kMiB, 3, 2), 8 * kMiB) << "more threads than CPUs";
  EXPECT_EQ(cache_budget_for_threads(4 * kMiB, 16, 16), 64 * kMiB);
  EXPECT_EQ(cache_budget_for_threads(4 * kMiB, 2, 1), 4 * kMiB);
  EXPECT_EQ(cache_budget_for_threads(0, 2, 2), 0u) << "0 stays off";
  EXPECT_EQ(cache_budget_for_threads(~std::uint64_t{0} / 2 + 1, 2, 2), ~std::uint64_t{0}) << "saturates";
}

using handoff::tree_support::Node;
using handoff::tree_support::tree;

// 31 nodes (one stale stack word keeps at most that many alive); out of
// line so that no pointer into the tree stays in the
// caller's frame.
[[gnu::noinline]] Node* make_tree(handoff::Heap& heap) { return tree(heap, 4); }

handoff::HeapConfig budget_config() {
  handoff::HeapConfig config = handoff::HeapConfig::from_environment();
  config.initial_heap_bytes = 8 * kMiB;
  config.cache_budget_bytes = 1 * kMiB;
  config.collect_every = 0;
  config.immortal = 0;
  return config;
}

// Allocates at least `bytes` in trees (cells of 32 B or more), keeping every
// `keep_every`-th one (0: none) in `kept`.
void churn(handoff::Heap& heap, std::uint64_t bytes, int keep_every, std::vector<std::unique_ptr<handoff::Root<Node>>>& kept) {
  const std::uint64_t trees = bytes / (31 * 32);
  for (std::uint64_t i = 1; i <= trees; ++i) {
    Node* t = make_tree(heap);
    if (keep_every != 0 && i % keep_every == 0) kept.push_back(std::make_unique<handoff::Root<Node>>(heap, t));
  }
}

TEST(CacheBudget, ChurnThatLeavesNothingAliveIsCollectedAfterTheCacheBudget) {
  handoff::Heap heap(budget_config());
  handoff::ThreadScope attached(heap);
  std::vector<std::unique_ptr<handoff::Root<Node>>> kept;
  churn(heap, 24 * kMiB, 0, kept);
  const handoff::HeapStats s = heap.stats();
  EXPECT_EQ(s.trigger_bytes, 1 * kMiB);
  EXPECT_GE(s.collections, 8u) << "8 MiB apart, 24 MiB would be 2 or 3 collections";
}

// Two threads churning together get one budget each (on a machine with two
// CPUs or more); an attached thread that does not allocate does not count.
// Each worker samples the trigger once it has allocated 8 MiB itself (so a
// collection has replaced the initial budget); while both allocate, the
// collections that end see two allocating threads.
TEST(CacheBudget, EachThreadThatAllocatedInTheCycleAddsABudget) {
  if (handoff::detail::marker_thread_count(0) < 2) GTEST_SKIP() << "needs 2 online CPUs";
  handoff::Heap heap(budget_config());
  handoff::ThreadScope attached(heap);  // this thread only waits: it does not count
  std::atomic<std::uint64_t> highest{0};
  // The threads go in step, a MiB at a time: left alone, one could finish
  // its 32 MiB before the other started (a loaded machine, parallel ctest),
  // and no cycle would have two allocating threads.
  std::barrier step(2);
  auto worker = [&] {
    handoff::ThreadScope scope(heap);
    std::vector<std::unique_ptr<handoff::Root<Node>>> kept;
    for (int mib = 1; mib <= 32; ++mib) {
      {
        handoff::ParkedScope waiting(heap);  // a collection need not wait for this thread
        step.arrive_and_wait();
      }
      churn(heap, kMiB, 0, kept);
      if (mib < 8) continue;
      const std::uint64_t trigger = heap.stats().trigger_bytes;
      std::uint64_t seen = highest.load();
      while (trigger > seen && !highest.compare_exchange_weak(seen, trigger)) {
      }
    }
  };
  {
    handoff::ParkedScope parked(heap);
    std::thread a(worker);
    std::thread b(worker);
    a.join();
    b.join();
  }
  EXPECT_GE(heap.stats().collections, 8u);
  EXPECT_EQ(highest.load(), 2 * kMiB) << "1 MiB per allocating thread, two threads";
}

TEST(CacheBudget, AHeapWhoseYoungSurviveKeepsItsWholeBudget) {
  handoff::Heap heap(budget_config());
  handoff::ThreadScope attached(heap);
  std::vector<std::unique_ptr<handoff::Root<Node>>> kept;
  churn(heap, 24 * kMiB, 10, kept);  // a tenth survives
  const handoff::HeapStats s = heap.stats();
  ASSERT_GE(s.collections, 1u);
  EXPECT_GE(s.trigger_bytes, 4 * kMiB);
  EXPECT_LE(s.collections, 6u);
}

}  // namespace
