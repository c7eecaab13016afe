// External memory (external_memory.h): released exactly once, by the
// recorded deleter, when the owner is swept or detached; counted by the
// trigger and in HeapStats.
#include "heap_test_support.h"

#include <handoff/external_memory.h>

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

namespace handoff::test {
namespace {

HeapConfig quiet_config() {
  HeapConfig config = env_config();
  config.collect_every = 0;
  config.sync_sweep = 1;
  return config;
}

// A store that counts its destructions: released twice shows as 2.
struct Store {
  static inline std::atomic<int> destroyed{0};
  std::uint64_t words[6] = {1, 2, 3, 4, 5, 6};  // 48 bytes, as in the V8 report
  ~Store() { destroyed.fetch_add(1, std::memory_order_relaxed); }
};

struct Wrapper : Leaf {
  ExternalMemory store;
};

[[gnu::noinline]] void make_garbage_wrapper(Heap& heap, std::size_t bytes) {
  Wrapper* w = heap.make<Wrapper>();
  w->store.attach(heap, std::make_unique<Store>(), bytes);
}

// The stack scan is conservative, so a stray word may keep a wrapper: the
// garbage is many wrappers made in a noinline helper, 90% must go at once,
// and the heap's destruction must bring every count to exactly one each.
TEST(ExternalMemory, ReleasedOnceWhenTheOwnerIsSwept) {
  HeapConfig config = quiet_config();
  HANDOFF_SKIP_IF_IMMORTAL(config);
  const int n = 20;
  Store::destroyed = 0;
  {
    Heap heap(config);
    ThreadScope attached(heap);
    for (int i = 0; i < n; ++i) make_garbage_wrapper(heap, 1000);
    EXPECT_EQ(heap.stats().external_bytes, 1000u * n);
    EXPECT_EQ(heap.stats().external_attached, static_cast<std::uint64_t>(n));
    scrub_and_collect(heap);
    const int released = Store::destroyed.load();
    EXPECT_GE(released, n * 9 / 10);
    const HeapStats s = heap.stats();
    EXPECT_EQ(s.external_bytes, 1000u * static_cast<std::uint64_t>(n - released));
    EXPECT_EQ(s.external_released, static_cast<std::uint64_t>(released));
  }
  EXPECT_EQ(Store::destroyed.load(), n) << "a store was released twice, or never";
}

TEST(ExternalMemory, LiveOwnerKeepsItAndHeapDestructionReleasesIt) {
  Store::destroyed = 0;
  {
    Heap heap(quiet_config());
    ThreadScope attached(heap);
    Root<Wrapper> w(heap, heap.make<Wrapper>());
    w->store.attach(heap, std::make_unique<Store>(), 48);
    scrub_and_collect(heap);
    EXPECT_EQ(Store::destroyed.load(), 0);
    EXPECT_EQ(w->store.as<Store>()->words[5], 6u);
    EXPECT_EQ(heap.stats().external_bytes, 48u);
  }
  EXPECT_EQ(Store::destroyed.load(), 1);
}

TEST(ExternalMemory, DetachReleasesNowAndTwiceIsAnError) {
  Heap heap(quiet_config());
  ThreadScope attached(heap);
  Store::destroyed = 0;
  Root<Wrapper> w(heap, heap.make<Wrapper>());
  w->store.attach(heap, std::make_unique<Store>(), 48);
  w->store.detach();
  EXPECT_EQ(Store::destroyed.load(), 1);
  EXPECT_FALSE(w->store.attached());
  EXPECT_EQ(heap.stats().external_bytes, 0u);
  try {
    w->store.detach();
    FAIL() << "a second detach was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kMisuse);
    EXPECT_NE(std::string(e.what()).find("detached twice"), std::string::npos) << e.what();
  }
  scrub_and_collect(heap);
  EXPECT_EQ(Store::destroyed.load(), 1) << "released again by the sweep";
}

TEST(ExternalMemory, AttachingTwiceIsAnErrorAndKeepsTheCallersMemory) {
  Heap heap(quiet_config());
  ThreadScope attached(heap);
  Store::destroyed = 0;
  Root<Wrapper> w(heap, heap.make<Wrapper>());
  w->store.attach(heap, std::make_unique<Store>(), 48);
  auto second = std::make_unique<Store>();
  EXPECT_THROW(w->store.attach(heap, std::move(second), 48), Error);
  EXPECT_NE(second, nullptr);  // still the caller's
  EXPECT_EQ(heap.stats().external_bytes, 48u);
  second.reset();
  EXPECT_EQ(Store::destroyed.load(), 1);
}

[[gnu::noinline]] void make_garbage_array_wrapper(Heap& heap) {
  Wrapper* w = heap.make<Wrapper>();
  w->store.attach(heap, std::make_unique<Store[]>(5), 5 * sizeof(Store));
}

TEST(ExternalMemory, ArraysAreReleasedWithDeleteArray) {
  HeapConfig config = quiet_config();
  HANDOFF_SKIP_IF_IMMORTAL(config);
  Heap heap(config);
  ThreadScope attached(heap);
  Store::destroyed = 0;
  for (int i = 0; i < 10; ++i) make_garbage_array_wrapper(heap);
  scrub_and_collect(heap);
  EXPECT_GE(Store::destroyed.load(), 9 * 5);
  EXPECT_EQ(Store::destroyed.load() % 5, 0) << "an array was not released with delete[]";
  EXPECT_EQ(heap.stats().external_bytes, (50u - static_cast<unsigned>(Store::destroyed.load())) * sizeof(Store));
}

TEST(ExternalMemory, RefusesUnattachedThreads) {
  Heap heap(quiet_config());
  Wrapper* w;
  {
    ThreadScope attached(heap);
    w = heap.make<Wrapper>();
  }
  auto store = std::make_unique<Store>();
  EXPECT_THROW(w->store.attach(heap, std::move(store), 48), Error);
  EXPECT_NE(store, nullptr);
}

// Small wrappers owning large stores: the wrappers alone would never reach
// the trigger (each is a few dozen bytes). Counting the attached bytes
// collects often enough that garbage stores do not pile up.
TEST(ExternalMemory, TriggerCountsAttachedBytes) {
  HeapConfig config = quiet_config();
  HANDOFF_SKIP_IF_IMMORTAL(config);
  config.initial_heap_bytes = 1 << 20;
  Heap heap(config);
  ThreadScope attached(heap);
  const std::size_t claimed = 256 << 10;  // what each store claims to hold
  const std::size_t count = 400;          // 100 MiB claimed in all
  for (std::size_t i = 0; i < count; ++i) make_garbage_wrapper(heap, claimed);
  const HeapStats s = heap.stats();
  std::printf("%zu wrappers of %zu claimed bytes: %llu collections, %llu bytes still attached\n", count, claimed,
              static_cast<unsigned long long>(s.collections), static_cast<unsigned long long>(s.external_bytes));
  EXPECT_GE(s.collections, count * claimed / (2 * config.initial_heap_bytes));
  // Conservative roots may keep a few wrappers; never more than a few
  // triggers' worth of stores is attached.
  EXPECT_LE(s.external_bytes, 4 * config.initial_heap_bytes);
  EXPECT_EQ(s.external_attached - s.external_released, s.external_bytes / claimed);
}

}  // namespace
}  // namespace handoff::test

namespace handoff::test {
namespace {

// Threads attach stores to short-lived wrappers while collections run and
// the concurrent sweeper (lazy sweeping) releases the dead ones on its own
// thread: every store is released exactly once, and the counters agree.
// (ThreadSanitizer checks the release against the attach.)
TEST(ExternalMemory, ReleasedByTheConcurrentSweeperWhileThreadsAttach) {
  HeapConfig config = env_config();
  HANDOFF_SKIP_IF_IMMORTAL(config);
  config.sync_sweep = 0;
  config.initial_heap_bytes = 256 << 10;
  const unsigned threads = 2;
  const std::size_t per_thread = sized(20000, 2000, 300);
  Store::destroyed = 0;
  {
    Heap heap(config);
    Watchdog watchdog(std::chrono::seconds(60), "ExternalMemory.ReleasedByTheConcurrentSweeperWhileThreadsAttach");
    std::vector<std::thread> workers;
    for (unsigned t = 0; t < threads; ++t) {
      workers.emplace_back([&] {
        ThreadScope attached(heap);
        for (std::size_t i = 0; i < per_thread; ++i) make_garbage_wrapper(heap, 4096);
      });
    }
    for (auto& worker : workers) worker.join();
    const HeapStats s = heap.stats();
    EXPECT_GT(s.collections, 0u);
    EXPECT_EQ(s.external_attached, threads * per_thread);
    EXPECT_EQ(s.external_attached - s.external_released, s.external_bytes / 4096);
  }
  EXPECT_EQ(Store::destroyed.load(), static_cast<int>(threads * per_thread));
}

}  // namespace
}  // namespace handoff::test
