// The park/stop handshake (collector/src/safepoint.cpp): parking and
// unparking in a tight loop while another thread collects, a parked
// thread's stack objects surviving collections, leaving a ParkedScope
// waiting for the collection that counted the thread as parked, nested
// scopes, and the allocation slice surviving a park (the trigger still sees
// what a thread that parks often allocates).
#include "heap_test_support.h"

#include <handoff/heap.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

namespace handoff::test {
namespace {

using namespace std::chrono_literals;

// Spins until `flag` holds `value`. An attached thread calls it inside a
// ParkedScope, or a collection would wait for it.
void wait_for(const std::atomic<int>& flag, int value) {
  while (flag.load() != value) std::this_thread::yield();
}

TEST(Parking, TightParkUnparkLoopsDuringCollectionsKeepLocals) {
  Watchdog watchdog(watchdog_limit(), "Parking.TightParkUnparkLoopsDuringCollectionsKeepLocals");
  Heap heap(env_config());
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::atomic<std::uint64_t> parks{0};
  std::atomic<std::uint64_t> rounds{0};  // of 256 scopes, all parkers together
  const unsigned parkers = 2;
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < parkers; ++t) {
    threads.emplace_back([&, t] {
      ThreadScope attached(heap);
      Node* volatile held = heap.make<Node>(t);
      std::uint64_t n = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        // No allocation and no poll between scopes: every stop this thread
        // takes part in is met by a park or an unpark.
        // Running stretches of varying length, so that stops find the
        // thread running (it parks through the slow path) as well as parked
        // (it unparks through the slow path).
        for (int k = 0; k < 256; ++k) {
          for (int spin = (k * 37) % 200; spin > 0; --spin) asm volatile("" ::: "memory");
          ParkedScope parked(heap);
          asm volatile("" ::: "memory");
        }
        n += 256;
        rounds.fetch_add(1, std::memory_order_relaxed);
        if (!held->intact(t)) failures.fetch_add(1);
        if (n % 4096 == 0) held = heap.make<Node>(t);  // the old one becomes garbage
      }
      parks.fetch_add(n);
      if (!held->intact(t)) failures.fetch_add(1);
    });
  }
  {
    ThreadScope attached(heap);
    // Collect while the parkers run: at least this many collections, and
    // until they did this many rounds (threads start late on a busy box).
    const std::size_t collections = sized(400, 80, 10);
    const std::uint64_t min_rounds = sized(4000, 400, 20);
    {
      ParkedScope parked(heap);
      while (rounds.load() < parkers) std::this_thread::yield();
    }
    for (std::size_t c = 0; c < collections || rounds.load() < min_rounds; ++c) {
      for (int k = 0; k < 8; ++k) heap.make<Node>(k);
      EXPECT_TRUE(heap.collect());
    }
    stop = true;
    ParkedScope parked(heap);
    for (auto& thread : threads) thread.join();
  }
  EXPECT_EQ(failures.load(), 0) << "a parking thread's local lost its node";
  EXPECT_GT(parks.load(), 0u);
}

// Objects held only by a parked thread's locals (no Root), with the stack
// below the scope scrubbed while parked: several collections later they
// are all intact, and their weak references were not cleared.
[[gnu::noinline]] void hold_while_parked(Heap& heap, std::vector<std::unique_ptr<Weak<Node>>>& weaks,
                                         std::atomic<int>& phase, std::size_t count) {
  std::vector<Node*> garbage;  // malloc'd, not scanned: what it points at is garbage
  Node* volatile locals[16];   // on the stack: roots
  for (std::size_t i = 0; i < 16; ++i) {
    locals[i] = heap.make<Node>(1000 + i);
    weaks.push_back(std::make_unique<Weak<Node>>(heap, locals[i]));
  }
  for (std::size_t i = 0; i < count; ++i) garbage.push_back(heap.make<Node>(i));  // garbage
  garbage.clear();
  {
    ParkedScope parked(heap);
    scrub_stack();
    phase.store(1);
    wait_for(phase, 2);
  }
  for (std::size_t i = 0; i < 16; ++i) {
    EXPECT_TRUE(locals[i]->intact(1000 + i)) << "a parked thread's local " << i << " was collected";
  }
}

TEST(Parking, ParkedThreadsStackObjectsSurviveCollections) {
  Watchdog watchdog(watchdog_limit(), "Parking.ParkedThreadsStackObjectsSurviveCollections");
  HeapConfig config = env_config();
  HANDOFF_SKIP_IF_IMMORTAL(config);
  config.sync_sweep = 1;
  Heap heap(config);
  std::vector<std::unique_ptr<Weak<Node>>> weaks;
  std::atomic<int> phase{0};
  std::thread holder([&] {
    ThreadScope attached(heap);
    hold_while_parked(heap, weaks, phase, sized(2000, 500, 100));
  });
  wait_for(phase, 1);
  {
    ThreadScope attached(heap);
    scrub_and_collect(heap, 3);
    for (std::size_t i = 0; i < weaks.size(); ++i) {
      EXPECT_NE(weaks[i]->get(), nullptr) << "weak reference " << i << " to a parked thread's local was cleared";
    }
    phase.store(2);
    ParkedScope parked(heap);
    holder.join();
  }
}

// A traced object whose trace() holds the collection up while `hold` is
// set, so a test can act while a collection is certainly running.
struct Staller {
  static inline std::atomic<bool> hold{false};
  static inline std::atomic<bool> in_trace{false};
  static inline std::atomic<bool> trace_done{false};
  void trace(Visitor&) const {
    if (!hold.load()) return;
    in_trace.store(true);
    while (hold.load()) std::this_thread::sleep_for(1ms);
    trace_done.store(true);
  }
};

TEST(Parking, LeavingWaitsForARunningCollection) {
  Watchdog watchdog(watchdog_limit(), "Parking.LeavingWaitsForARunningCollection");
  Heap heap(env_config());
  Staller::hold = true;
  Staller::in_trace = false;
  Staller::trace_done = false;
  std::atomic<int> phase{0};
  std::atomic<bool> left{false};
  std::atomic<bool> saw_trace_done{false};
  std::uint64_t collections_before = 0;
  std::uint64_t collections_seen = 0;
  std::thread parker([&] {
    ThreadScope attached(heap);
    {
      ParkedScope parked(heap);
      phase.store(1);
      wait_for(phase, 2);
    }  // the collection counted us as parked: this waits for its end
    left = true;
    saw_trace_done = Staller::trace_done.load();
    collections_seen = heap.stats().collections;
  });
  wait_for(phase, 1);
  collections_before = heap.stats().collections;
  std::thread collector([&] {
    ThreadScope attached(heap);
    Root<Staller> staller(heap, heap.make<Staller>());
    heap.collect();
  });
  while (!Staller::in_trace.load()) std::this_thread::yield();
  phase.store(2);  // the parker tries to leave while marking is held up
  std::this_thread::sleep_for(100ms);
  EXPECT_FALSE(left.load()) << "a thread left its ParkedScope while a collection that counted it was running";
  Staller::hold = false;
  collector.join();
  parker.join();
  EXPECT_TRUE(left.load());
  EXPECT_TRUE(saw_trace_done.load()) << "the parker left before marking ended";
  EXPECT_GE(collections_seen, collections_before + 1) << "the parker left before the collection ended";
}

TEST(Parking, NestedScopesParkOnceAndUnparkAtTheOutermost) {
  Watchdog watchdog(watchdog_limit(), "Parking.NestedScopesParkOnceAndUnparkAtTheOutermost");
  Heap heap(env_config());
  std::atomic<int> phase{0};
  std::atomic<int> refused{0};
  std::atomic<bool> intact_after{false};
  std::thread nested([&] {
    ThreadScope attached(heap);
    Node* volatile node = heap.make<Node>(7);
    {
      ParkedScope outer(heap);
      {
        ParkedScope inner(heap);
        if (throws_error([&] { heap.make<Node>(1); }, ErrorCode::kMisuse)) refused.fetch_add(1);
        phase.store(1);
        wait_for(phase, 2);
      }
      // Still parked: a collection must not wait for us, allocation is refused.
      if (throws_error([&] { heap.make<Node>(2); }, ErrorCode::kMisuse)) refused.fetch_add(1);
      phase.store(3);
      wait_for(phase, 4);
    }
    intact_after = node->intact(7) && heap.make<Node>(8)->intact(8);
  });
  {
    ThreadScope attached(heap);
    ParkedScope parked_while_waiting(heap);
    wait_for(phase, 1);
  }
  {
    ThreadScope attached(heap);
    EXPECT_TRUE(heap.collect()) << "inside the inner scope";
    phase.store(2);
    {
      ParkedScope parked_while_waiting(heap);
      wait_for(phase, 3);
    }
    EXPECT_TRUE(heap.collect()) << "between the inner and the outer scope's ends";
    phase.store(4);
    ParkedScope parked(heap);
    nested.join();
  }
  EXPECT_EQ(refused.load(), 2) << "allocation inside a nested ParkedScope was not refused";
  EXPECT_TRUE(intact_after.load());
}

// A DeferGC opened and closed inside a ParkedScope runs the collection
// that was requested meanwhile on the parked thread: it keeps the snapshot
// it published at park time, and the collection counts only the others.
TEST(Parking, DeferredCollectionRunsOnAParkedThread) {
  Watchdog watchdog(watchdog_limit(), "Parking.DeferredCollectionRunsOnAParkedThread");
  HeapConfig config = env_config();
  HANDOFF_SKIP_IF_IMMORTAL(config);
  Heap heap(config);
  std::atomic<int> phase{0};
  std::unique_ptr<Weak<Node>> weak;
  std::thread parked_collector([&] {
    ThreadScope attached(heap);
    Node* volatile node = heap.make<Node>(5);
    weak = std::make_unique<Weak<Node>>(heap, node);
    ParkedScope parked(heap);
    {
      DeferGC defer(heap);
      phase.store(1);
      wait_for(phase, 2);
    }  // runs the deferred collection here, parked
    phase.store(3);
    asm volatile("" : : "r"(node) : "memory");
  });
  {
    ThreadScope attached(heap);
    {
      ParkedScope parked(heap);
      wait_for(phase, 1);
    }
    const std::uint64_t before = heap.stats().collections;
    EXPECT_FALSE(heap.collect()) << "collect() ran inside another thread's DeferGC";
    phase.store(2);
    {
      ParkedScope parked(heap);
      wait_for(phase, 3);
    }
    EXPECT_GE(heap.stats().collections, before + 1) << "the deferred collection did not run";
    EXPECT_NE(weak->get(), nullptr) << "the parked collector's own local was collected";
    ParkedScope parked(heap);
    parked_collector.join();
  }
}

// Parking neither publishes nor drops the allocation slice: a thread that
// parks after every allocation still has its bytes counted by the trigger,
// to within one slice.
TEST(Parking, AllocationOfAThreadThatParksOftenReachesTheTrigger) {
  HeapConfig config = env_config();
  Heap heap(config);
  ThreadScope attached(heap);
  const std::uint64_t before = heap.stats().bytes_allocated;
  const std::size_t count = sized(200000, 20000, 2000);
  for (std::size_t i = 0; i < count; ++i) {
    heap.make<Node>(i);
    ParkedScope parked(heap);
  }
  const std::uint64_t allocated = count * (sizeof(Node) + detail::kCellHeaderSize);
  const std::uint64_t published = heap.stats().bytes_allocated - before;
  EXPECT_GE(published + config.allocation_slice_bytes, allocated)
      << "parking hid allocation from the trigger: " << published << " of " << allocated << " bytes published";
}

}  // namespace
}  // namespace handoff::test
