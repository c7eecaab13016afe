// What users can get wrong, and the side-effect scopes: allocation from an
// unattached or parked thread, attaching twice, sizes that overflow and
// constructors that throw all throw (or propagate) and leave the heap
// usable; DeferGC defers collections until its last scope closes; a
// collection inside ForbidGC, or a heap destroyed with a thread still
// attached, aborts with a message.
#include "heap_test_support.h"

#include <handoff/heap.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <future>
#include <limits>
#include <stdexcept>
#include <thread>

namespace handoff::test {
namespace {

struct ThrowsInConstructor {
  std::uint64_t words[4];
  explicit ThrowsInConstructor(bool do_throw) : words{1, 2, 3, 4} {
    if (do_throw) throw std::runtime_error("constructor failed");
  }
  void trace(Visitor&) const {}
};

}  // namespace

TEST(Misuse, AllocationFromAnUnattachedThreadThrows) {
  Heap heap(env_config());
  EXPECT_FALSE(heap.current_thread_attached());
  EXPECT_TRUE(throws_error([&] { heap.make<Node>(1); }, ErrorCode::kMisuse));
  EXPECT_TRUE(throws_error([&] { heap.try_make<Node>(1); }, ErrorCode::kMisuse));
  EXPECT_TRUE(throws_error([&] { heap.make_array<double>(10); }, ErrorCode::kMisuse));
  ThreadScope attached(heap);
  // Another thread, while this one is attached.
  auto other = std::async(std::launch::async, [&] { return throws_error([&] { heap.make<Node>(2); }, ErrorCode::kMisuse); });
  {
    ParkedScope parked(heap);
    EXPECT_TRUE(other.get());
  }
  EXPECT_TRUE(heap.make<Node>(3)->intact(3)) << "the heap is unusable after the refused allocations";
}

TEST(Misuse, AllocationWhileParkedThrows) {
  Heap heap(env_config());
  ThreadScope attached(heap);
  {
    ParkedScope parked(heap);
    EXPECT_TRUE(throws_error([&] { heap.make<Node>(1); }, ErrorCode::kMisuse));
  }
  EXPECT_TRUE(heap.make<Node>(2)->intact(2));
}

TEST(Misuse, AttachingTwiceOrDetachingUnattachedThrows) {
  Heap heap(env_config());
  EXPECT_TRUE(throws_error([&] { heap.detach_current_thread(); }, ErrorCode::kMisuse));
  heap.attach_current_thread();
  EXPECT_TRUE(throws_error([&] { heap.attach_current_thread(); }, ErrorCode::kMisuse));
  EXPECT_TRUE(throws_error([&] { ThreadScope second(heap); }, ErrorCode::kMisuse));
  EXPECT_TRUE(heap.current_thread_attached());
  EXPECT_EQ(heap.stats().attached_threads, 1u);
  EXPECT_TRUE(heap.make<Node>(1)->intact(1));
  heap.detach_current_thread();
  EXPECT_FALSE(heap.current_thread_attached());
  EXPECT_TRUE(throws_error([&] { heap.detach_current_thread(); }, ErrorCode::kMisuse));
}

TEST(Misuse, OverflowingArraySizesThrow) {
  Heap heap(env_config());
  ThreadScope attached(heap);
  EXPECT_TRUE(throws_error([&] { heap.make_array<double>(std::numeric_limits<std::size_t>::max() / 4); },
                           ErrorCode::kSizeOverflow));
  EXPECT_TRUE(throws_error([&] { heap.make_with_extra<Node>(std::numeric_limits<std::size_t>::max() - 8, 1); },
                           ErrorCode::kSizeOverflow));
  EXPECT_TRUE(heap.make<Node>(1)->intact(1));
}

TEST(Misuse, ThrowingConstructorLeavesTheHeapConsistent) {
  HeapConfig config = env_config();
  config.verify = 1;
  Heap heap(config);
  ThreadScope attached(heap);
  Root<Node> kept(heap, heap.make<Node>(1));
  for (int i = 0; i < 100; ++i) EXPECT_THROW(heap.make<ThrowsInConstructor>(true), std::runtime_error);
  heap.collect();
  heap.collect();
  EXPECT_TRUE(kept->intact(1));
  ThrowsInConstructor* fine = heap.make<ThrowsInConstructor>(false);
  EXPECT_EQ(fine->words[3], 4u);
  EXPECT_GE(heap.stats().verifications, 2u);
}

// ---- DeferGC / ForbidGC ---------------------------------------------------

TEST(DeferGCTest, CollectionRequestedInsideRunsWhenTheLastScopeCloses) {
  Heap heap(env_config());
  ThreadScope attached(heap);
  Root<Node> kept(heap, heap.make<Node>(1));
  const HeapStats before = heap.stats();
  {
    DeferGC outer(heap);
    {
      DeferGC inner(heap);
      EXPECT_FALSE(heap.collect());
      EXPECT_EQ(heap.stats().deferred_collections, before.deferred_collections + 1);
    }
    EXPECT_FALSE(heap.collect()) << "the outer scope is still open";
    EXPECT_EQ(heap.stats().collections, before.collections) << "a collection ran inside DeferGC";
    EXPECT_GE(heap.stats().deferred_collections, before.deferred_collections + 2);
  }
  EXPECT_GE(heap.stats().collections, before.collections + 1) << "the deferred collection did not run";
  EXPECT_TRUE(heap.collect());
  EXPECT_TRUE(kept->intact(1));
}

TEST(DeferGCTest, ScopeOnAnotherThreadDefersThisThreadsCollection) {
  Watchdog watchdog(watchdog_limit(), "DeferGCTest.ScopeOnAnotherThreadDefersThisThreadsCollection");
  Heap heap(env_config());
  std::promise<void> deferring;
  std::promise<void> release;
  std::thread holder([&] {
    ThreadScope attached(heap);
    DeferGC defer(heap);
    deferring.set_value();
    ParkedScope parked(heap);
    release.get_future().wait();
  });
  deferring.get_future().wait();
  {
    ThreadScope attached(heap);
    const std::uint64_t collections = heap.stats().collections;
    EXPECT_FALSE(heap.collect()) << "collect() ran while another thread held DeferGC";
    EXPECT_EQ(heap.stats().collections, collections);
  }
  release.set_value();
  holder.join();
  EXPECT_GE(heap.stats().collections, 1u) << "the deferred collection did not run when the scope closed";
}

TEST(ForbidGCTest, CollectionRequestedOnAnotherThreadIsDeferred) {
  Watchdog watchdog(watchdog_limit(), "ForbidGCTest.CollectionRequestedOnAnotherThreadIsDeferred");
  Heap heap(env_config());
  std::promise<void> forbidding;
  std::promise<void> release;
  std::thread holder([&] {
    ThreadScope attached(heap);
    ForbidGC forbid(heap);
    forbidding.set_value();
    ParkedScope parked(heap);
    release.get_future().wait();
  });
  forbidding.get_future().wait();
  {
    ThreadScope attached(heap);
    EXPECT_FALSE(heap.collect());
  }
  release.set_value();
  holder.join();
}

TEST(ForbidGCDeathTest, CollectInsideForbidGCAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        Heap heap(env_config());
        ThreadScope attached(heap);
        ForbidGC forbid(heap);
        heap.collect();
      },
      "ForbidGC");
}

// ~Heap detaches its own thread (an attach without a detach)...
TEST(HeapDestruction, DestroyingThreadStillAttachedIsDetached) {
  auto heap = std::make_unique<Heap>(env_config());
  heap->attach_current_thread();
  heap->make<Node>(1);
  heap.reset();
  Heap next(env_config());
  ThreadScope attached(next);  // nothing of the old heap is left on this thread
  EXPECT_TRUE(next.make<Node>(2)->intact(2));
}

// ... waits HANDOFF_DESTROY_WAIT_MS for the others, and aborts naming one
// that is still attached after that.
TEST(HeapDeathTest, DestroyingAHeapWithAThreadThatStaysAttachedAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        HeapConfig config = env_config();
        config.destroy_wait_ms = 50;
        auto* heap = new Heap(config);
        std::atomic<bool> attached{false};
        std::thread([&] {
          ThreadScope scope(*heap);
          ParkedScope parked(*heap);
          attached.store(true);
          for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));  // until the abort
        }).detach();
        while (!attached.load()) std::this_thread::yield();
        delete heap;
      },
      "still attached after waiting 50 ms");
}

}  // namespace handoff::test
