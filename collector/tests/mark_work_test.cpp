// Parallel marking's parts: the work pool and its termination protocol
// (mark_work.h), the persistent marker threads (marker_threads.h), and the
// heap marking with them (HANDOFF_MARKER_THREADS): every reachable object
// marked exactly once, exceptions from trace() on any worker.
#include "embedder_access.h"
#include "mark_work.h"
#include "marker_threads.h"
#include "tree_support.h"

#include <handoff/heap.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

namespace {

using handoff::detail::MarkerThreads;
using handoff::detail::MarkWorkPool;

// A synthetic mark: item d > 0 makes two items d - 1, so a drain that
// starts from one item of depth D processes 2^(D+1) - 1 items. Work is
// "outstanding" from the push that makes it until it is processed; a
// worker that is told "terminated" while any is outstanding is a failure.
struct TreeDrain {
  MarkWorkPool pool;
  std::atomic<std::int64_t> outstanding{0};
  std::atomic<std::uint64_t> processed{0};
  std::atomic<int> early_terminations{0};

  static const void* item(std::uintptr_t depth) { return reinterpret_cast<const void*>(depth + 1); }
  static std::uintptr_t depth_of(const void* p) { return reinterpret_cast<std::uintptr_t>(p) - 1; }

  void work(std::vector<const void*>& stack) {
    for (;;) {
      while (!stack.empty()) {
        const std::uintptr_t d = depth_of(stack.back());
        stack.pop_back();
        if (d > 0) {
          outstanding.fetch_add(2);
          stack.push_back(item(d - 1));
          stack.push_back(item(d - 1));
        }
        processed.fetch_add(1);
        outstanding.fetch_sub(1);
        // Gives away everything (a harder case than the marker's half): the
        // donor then goes idle at once, while the taker may not yet count
        // itself busy.
        if (!stack.empty() && pool.wants_work()) {
          pool.donate(std::move(stack));
          stack.clear();
        }
      }
      if (!pool.take_or_terminate(stack)) break;
    }
    if (outstanding.load() != 0) early_terminations.fetch_add(1);
  }
};

TEST(MarkWorkPool, OneWorkerTerminatesAtOnceWhenThePoolIsEmpty) {
  MarkWorkPool pool;
  pool.reset(1);
  MarkWorkPool::Segment out;
  EXPECT_FALSE(pool.take_or_terminate(out));
  pool.reset(1);
  pool.donate(MarkWorkPool::Segment{TreeDrain::item(0)});
  ASSERT_TRUE(pool.take_or_terminate(out));
  EXPECT_EQ(out.size(), 1u);
  out.clear();
  EXPECT_FALSE(pool.take_or_terminate(out));
}

TEST(MarkWorkPool, WantsWorkOnlyWhileSomeoneIsIdleAndThePoolIsEmpty) {
  MarkWorkPool pool;
  pool.reset(2);
  EXPECT_FALSE(pool.wants_work());  // both active
  std::thread idle([&] {
    MarkWorkPool::Segment out;
    while (pool.take_or_terminate(out)) out.clear();
  });
  while (!pool.wants_work()) std::this_thread::yield();
  pool.donate(MarkWorkPool::Segment{TreeDrain::item(0)});
  // The idle worker takes it (and then waits for this one again).
  while (!pool.wants_work()) std::this_thread::yield();
  MarkWorkPool::Segment mine;
  EXPECT_FALSE(pool.take_or_terminate(mine));  // both out of work: terminated
  idle.join();
}

// Many small drains on 2, 3 and 8 threads (more than the cores): every item
// processed, and no worker ever terminates while work is outstanding.
TEST(MarkWorkPool, EveryDrainProcessesEverythingAndNoWorkerEndsEarly) {
  for (const std::size_t workers : {2u, 3u, 8u}) {
    for (int round = 0; round < 20; ++round) {
      TreeDrain drain;
      drain.pool.reset(workers);
      const std::uintptr_t depth = 6 + static_cast<std::uintptr_t>(round % 5);
      drain.outstanding.store(1);
      std::vector<std::thread> threads;
      for (std::size_t w = 0; w < workers; ++w) {
        threads.emplace_back([&, w] {
          std::vector<const void*> stack;
          if (w == 0) stack.push_back(TreeDrain::item(depth));
          drain.work(stack);
        });
      }
      for (auto& t : threads) t.join();
      EXPECT_EQ(drain.processed.load(), (std::uint64_t{2} << depth) - 1) << workers << " workers";
      EXPECT_EQ(drain.early_terminations.load(), 0) << workers << " workers";
    }
  }
}

TEST(MarkWorkPool, AbortEndsEveryWaitingWorker) {
  MarkWorkPool pool;
  pool.reset(3);
  std::atomic<int> ended{0};
  std::vector<std::thread> idle;
  for (int i = 0; i < 2; ++i) {
    idle.emplace_back([&] {
      MarkWorkPool::Segment out;
      while (pool.take_or_terminate(out)) out.clear();
      ended.fetch_add(1);
    });
  }
  // The third worker is active (it never calls take_or_terminate), so
  // without the abort the others would wait for it.
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(ended.load(), 0);
  pool.abort();
  for (auto& t : idle) t.join();
  EXPECT_EQ(ended.load(), 2);
}

TEST(MarkerThreads, EveryWorkerRunsEachRoundOnce) {
  MarkerThreads threads(3);
  ASSERT_EQ(threads.workers(), 4u);
  EXPECT_TRUE(threads.usable());
  for (int round = 0; round < 50; ++round) {
    std::vector<std::atomic<int>> runs(4);
    std::set<std::thread::id> ids;
    std::mutex m;
    threads.run([&](std::size_t w) {
      runs[w].fetch_add(1);
      std::lock_guard lock(m);
      ids.insert(std::this_thread::get_id());
    });
    for (auto& r : runs) EXPECT_EQ(r.load(), 1);
    EXPECT_EQ(ids.size(), 4u);
    EXPECT_EQ(ids.count(std::this_thread::get_id()), 1u);  // worker 0 is the caller
  }
}

TEST(MarkerThreads, AnExceptionOnAHelperReachesTheCallerAfterAllFinished) {
  MarkerThreads threads(2);
  std::atomic<int> finished{0};
  EXPECT_THROW(threads.run([&](std::size_t w) {
    if (w == 2) throw std::runtime_error("from a helper");
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    finished.fetch_add(1);
  }),
               std::runtime_error);
  EXPECT_EQ(finished.load(), 2);  // run() returned only after the others
  std::atomic<int> again{0};
  threads.run([&](std::size_t) { again.fetch_add(1); });  // still usable
  EXPECT_EQ(again.load(), 3);
}

// --- the heap marking on its marker threads ---

using handoff::tree_support::Node;
using handoff::tree_support::tree;

handoff::HeapConfig markers_config(std::uint64_t markers) {
  handoff::HeapConfig config = handoff::HeapConfig::from_environment();
  config.marker_threads = markers;
  config.marker_parallel_min_bytes = 0;  // these heaps are small: parallel all the same
  config.marker_parallel_min_blocks = 0;
  config.collect_every = 0;
  config.verify = 1;
  return config;
}

TEST(ParallelMarking, MarksEveryReachableObjectOnceWithEachWorkerCount) {
  constexpr int kDepth = 12;
  constexpr std::uint64_t kNodes = (std::uint64_t{2} << kDepth) - 1;
  for (const std::uint64_t markers : {1u, 2u, 8u}) {
    handoff::Heap heap(markers_config(markers));
    handoff::ThreadScope attached(heap);
    handoff::Root<Node> a(heap, tree(heap, kDepth));
    handoff::Root<Node> b(heap, tree(heap, kDepth));
    for (int c = 0; c < 3; ++c) {
      const handoff::HeapStats before = heap.stats();
      heap.collect();  // full; the verifier checks every reachable object is marked
      const handoff::HeapStats after = heap.stats();
      // marked once each: a double count would mean a cell traced twice
      EXPECT_EQ(after.live_objects, 2 * kNodes) << markers << " marker threads";
      EXPECT_EQ(after.verifications, before.verifications + 1);
    }
  }
}

// The remembered set, the roots and the drain of a collection are one round
// of the marker threads (one wake-up, one barrier); beginning the lazy sweep
// is the other. Before, each of them was a round of its own: 3 per full
// collection, 4 per eden collection.
TEST(ParallelMarking, ACollectionWakesTheMarkerThreadsAtMostTwice) {
  handoff::HeapConfig config = markers_config(2);
  config.verify = 0;  // the verifier marks on one thread; it would not add rounds, but keep the count plain
  handoff::Heap heap(config);
  handoff::ThreadScope attached(heap);
  handoff::Root<Node> root(heap, tree(heap, 10));
  MarkerThreads* threads = handoff::detail::EmbedderAccess::internals(heap).marker_threads.get();
  ASSERT_NE(threads, nullptr);
  for (int c = 0; c < 4; ++c) {
    const std::uint64_t before = threads->rounds();
    if (c % 2 == 0) {
      heap.collect();  // full
    } else {
      root->left = heap.make<Node>();  // a new object behind an old one: the card is dirty
      heap.collect(handoff::CollectionScope::kEden);
    }
    const std::uint64_t rounds = threads->rounds() - before;
    // It did mark in parallel: without this the bound below could hold
    // because the collection never used the marker threads at all.
    EXPECT_GE(rounds, 1u) << c;
    EXPECT_LE(rounds, 2u) << c;
  }
  EXPECT_EQ(heap.stats().eden_collections, 2u);
}

TEST(ParallelMarking, RejectsTooManyMarkerThreads) {
  ::setenv("HANDOFF_MARKER_THREADS", "100000", 1);
  EXPECT_THROW(handoff::HeapConfig::from_environment(), handoff::Error);
  ::setenv("HANDOFF_MARKER_THREADS", "two", 1);
  EXPECT_THROW(handoff::HeapConfig::from_environment(), handoff::Error);
  ::unsetenv("HANDOFF_MARKER_THREADS");
}

// --- the visit queue (marker.cpp, Marker::visit) ---
//
// A visited object is marked a few visits later. Each drain must mark what
// was queued before it started, on one worker or several: a post-mark hook
// marks one object (Heap::MarkPhase::mark: a visit on the collecting thread,
// then a drain), which reaches a tree nothing else reaches, and weak
// references are cleared right after the hook. A queue left unflushed (or a
// parallel drain that takes the queued visit for no work, and returns at
// once) leaves the tree unmarked: the weak reference is cleared and the
// live count misses the tree.

constexpr std::uintptr_t kHideMask = 0x5a5a5a5a5a5a5a5a;  // no word of the test holds the pointer itself
std::uintptr_t g_hidden = 0;

void mark_hidden(handoff::Heap::MarkPhase& phase, void* /*context*/) {
  if (g_hidden != 0) phase.mark(reinterpret_cast<const void*>(g_hidden ^ kHideMask));
}

[[gnu::noinline]] std::unique_ptr<handoff::Weak<Node>> make_hidden(handoff::Heap& heap, int depth) {
  Node* root = tree(heap, depth);
  g_hidden = reinterpret_cast<std::uintptr_t>(root) ^ kHideMask;
  for (int i = 0; i < 16; ++i) heap.make<Node>();  // the last allocations may linger in registers
  return std::make_unique<handoff::Weak<Node>>(heap, root);
}

TEST(VisitQueue, WhatAPostMarkHookMarksIsTracedBeforeWeakReferencesAreCleared) {
  constexpr int kDepth = 6;
  constexpr std::uint64_t kNodes = (std::uint64_t{2} << kDepth) - 1;
  for (const std::uint64_t markers : {1u, 2u, 8u}) {
    handoff::Heap heap(markers_config(markers));
    handoff::ThreadScope attached(heap);
    heap.add_post_mark_hook(&mark_hidden, nullptr);
    handoff::Root<Node> rooted(heap, tree(heap, kDepth));
    const std::unique_ptr<handoff::Weak<Node>> hidden = make_hidden(heap, kDepth);
    for (int c = 0; c < 2; ++c) {
      heap.collect();
      EXPECT_NE(hidden->get(), nullptr) << markers << " marker threads, collection " << c;
      // At least: a stale stack word may keep one of the other objects.
      EXPECT_GE(heap.stats().live_objects, 2 * kNodes) << markers << " marker threads, collection " << c;
    }
    g_hidden = 0;
  }
}

struct TraceFailure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::atomic<bool> g_fail_trace{false};

struct Fragile {
  handoff::Member<Fragile> left;
  handoff::Member<Fragile> right;
  int depth = 0;
  void trace(handoff::Visitor& v) const {
    if (depth == 0 && g_fail_trace.load(std::memory_order_relaxed)) throw TraceFailure("trace failed");
    v.trace(left);
    v.trace(right);
  }
};

Fragile* fragile_tree(handoff::Heap& heap, int depth) {
  Fragile* n = heap.make<Fragile>();
  n->depth = depth;
  if (depth > 0) {
    Fragile* l = fragile_tree(heap, depth - 1);
    Fragile* r = fragile_tree(heap, depth - 1);
    n->left = l;
    n->right = r;
  }
  return n;
}

// Leaves (2^10 of them, traced by whichever workers) throw: collect()
// rethrows the exception on the collecting thread, and no worker hangs.
// The heap's state after a failed collection is not this test's subject:
// the child exits at once.
void collect_with_throwing_trace(std::uint64_t markers) {
  handoff::HeapConfig config = markers_config(markers);
  config.verify = 0;
  handoff::Heap heap(config);
  handoff::ThreadScope attached(heap);
  handoff::Root<Fragile> root(heap, fragile_tree(heap, 10));
  g_fail_trace.store(true);
  try {
    heap.collect();
  } catch (const TraceFailure&) {
    std::_Exit(42);
  } catch (...) {
    std::_Exit(2);
  }
  std::_Exit(1);
}

std::atomic<bool> g_fail_scan{false};

void throwing_scanner(handoff::Visitor& /*visitor*/, void* /*context*/) {
  if (g_fail_scan.load(std::memory_order_relaxed)) throw TraceFailure("root scanner failed");
}

// A root scanner's task runs in the drain's round when the marking is
// parallel (queued by mark_roots): its exception still leaves collect(),
// the world is resumed, and the next collection marks everything.
TEST(ParallelMarking, AnExceptionFromARootScannerLeavesCollectAndTheHeapGoesOn) {
  constexpr int kDepth = 8;
  constexpr std::uint64_t kNodes = (std::uint64_t{2} << kDepth) - 1;
  for (const std::uint64_t markers : {1u, 2u, 8u}) {
    handoff::Heap heap(markers_config(markers));
    handoff::ThreadScope attached(heap);
    handoff::Root<Node> root(heap, tree(heap, kDepth));
    heap.add_root_scanner(&throwing_scanner, nullptr);
    g_fail_scan.store(true);
    EXPECT_THROW(heap.collect(), TraceFailure) << markers;
    g_fail_scan.store(false);
    heap.collect();  // the verifier checks it
    EXPECT_EQ(heap.stats().live_objects, kNodes) << markers;
  }
}

TEST(ParallelMarkingDeathTest, AnExceptionFromTraceOnAnyWorkerLeavesCollect) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  for (const std::uint64_t markers : {1u, 2u, 8u}) {
    EXPECT_EXIT(collect_with_throwing_trace(markers), testing::ExitedWithCode(42), "") << markers;
  }
}

}  // namespace
