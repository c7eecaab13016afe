// Checked handles (checked_handle.h): each way a handle goes stale gives
// its own error, never a read of reused memory.
#include "heap_test_support.h"

#include <handoff/checked_handle.h>

#include <atomic>
#include <memory>
#include <optional>
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

template <class F>
void expect_error(ErrorCode code, const std::string& text, F&& f) {
  try {
    f();
    ADD_FAILURE() << "no error; expected " << error_code_name(code);
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << e.what();
  }
}

[[gnu::noinline]] void make_garbage(Heap& heap, std::vector<CheckedHandle<Node>>& handles, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) handles.emplace_back(heap, heap.make<Node>(i));
}

TEST(CheckedHandle, ResolvesWhileTheObjectLives) {
  Heap heap(quiet_config());
  ThreadScope attached(heap);
  Root<Node> node(heap, heap.make<Node>(7));
  CheckedHandle<Node> handle(heap, node.get());
  scrub_and_collect(heap);
  ASSERT_EQ(handle.get(), node.get());
  EXPECT_TRUE(handle->intact(7));
  EXPECT_EQ(heap.stats().checked_handles, 1u);
}

// The stack scan is conservative: many objects, 90% collected.
TEST(CheckedHandle, StaleOnceTheObjectWasCollected) {
  HeapConfig config = quiet_config();
  HANDOFF_SKIP_IF_IMMORTAL(config);
  Heap heap(config);
  ThreadScope attached(heap);
  const std::size_t n = 20;
  std::vector<CheckedHandle<Node>> handles;
  make_garbage(heap, handles, n);
  scrub_and_collect(heap, 1);
  std::size_t stale = 0;
  for (std::size_t i = 0; i < n; ++i) {
    try {
      EXPECT_TRUE(handles[i].get()->intact(i));  // kept by a stray word: still intact
    } catch (const Error& e) {
      ++stale;
      EXPECT_EQ(e.code(), ErrorCode::kStaleHandle);
      EXPECT_NE(std::string(e.what()).find("collected"), std::string::npos) << e.what();
      expect_error(ErrorCode::kStaleHandle, "collected", [&] { handles[i].release(); });
    }
  }
  EXPECT_GE(stale, n * 9 / 10);
  EXPECT_EQ(heap.stats().checked_handles_cleared, stale);
  EXPECT_EQ(heap.stats().checked_handles, n - stale);
}

[[gnu::noinline]] CheckedHandle<Node> make_strong(Heap& heap, std::uint64_t id, std::unique_ptr<Weak<Node>>& probe) {
  Node* node = heap.make<Node>(id);
  probe = std::make_unique<Weak<Node>>(heap, node);
  return CheckedHandle<Node>(heap, node, HandleStrength::kStrong);
}

// The stack scan is conservative: many objects, 90% reclaimed once released.
TEST(CheckedHandle, StrongHandleKeepsItsObjectUntilReleased) {
  HeapConfig config = quiet_config();
  HANDOFF_SKIP_IF_IMMORTAL(config);
  Heap heap(config);
  ThreadScope attached(heap);
  const std::size_t n = 20;
  std::vector<std::unique_ptr<Weak<Node>>> probes(n);
  std::vector<CheckedHandle<Node>> handles;
  for (std::size_t i = 0; i < n; ++i) handles.push_back(make_strong(heap, i, probes[i]));
  scrub_and_collect(heap);
  for (std::size_t i = 0; i < n; ++i) {
    ASSERT_NE(probes[i]->get(), nullptr) << "a strong handle did not keep its object";
    EXPECT_TRUE(handles[i].get()->intact(i));
  }
  for (const auto& handle : handles) handle.release();
  expect_error(ErrorCode::kStaleHandle, "released", [&] { handles[0].get(); });
  expect_error(ErrorCode::kStaleHandle, "released", [&] { handles[0].release(); });  // twice
  scrub_and_collect(heap);
  std::size_t cleared = 0;
  for (const auto& probe : probes) cleared += probe->get() == nullptr ? 1 : 0;
  EXPECT_GE(cleared, n * 9 / 10);
}

TEST(CheckedHandle, StaleWhenItsSlotWasReused) {
  Heap heap(quiet_config());
  ThreadScope attached(heap);
  Root<Node> a(heap, heap.make<Node>(1));
  Root<Node> b(heap, heap.make<Node>(2));
  const CheckedHandle<Node> old_handle(heap, a.get());
  old_handle.release();
  const CheckedHandle<Node> new_handle(heap, b.get());
  ASSERT_EQ(new_handle.index(), old_handle.index());  // the slot is reused ...
  EXPECT_NE(new_handle.generation(), old_handle.generation());  // ... at a new generation
  EXPECT_EQ(new_handle.get(), b.get());
  expect_error(ErrorCode::kStaleHandle, "stale", [&] { old_handle.get(); });
}

TEST(CheckedHandle, UsedAfterItsHeapWasDestroyed) {
  CheckedHandle<Node> handle;
  {
    Heap heap(quiet_config());
    ThreadScope attached(heap);
    Root<Node> node(heap, heap.make<Node>(1));
    handle = CheckedHandle<Node>(heap, node.get(), HandleStrength::kStrong);
  }
  expect_error(ErrorCode::kHeapDestroyed, "destroyed", [&] { handle.get(); });
  expect_error(ErrorCode::kHeapDestroyed, "destroyed", [&] { handle.release(); });
  // A later heap (perhaps at the same address) does not adopt it.
  Heap next(quiet_config());
  ThreadScope attached(next);
  Root<Node> other(next, next.make<Node>(2));
  const CheckedHandle<Node> fresh(next, other.get());
  expect_error(ErrorCode::kHeapDestroyed, "destroyed", [&] { handle.get(); });
  EXPECT_EQ(fresh.get(), other.get());
}

TEST(CheckedHandle, GetFromAnUnattachedThreadIsMisuse) {
  Heap heap(quiet_config());
  std::optional<Root<Node>> node;
  CheckedHandle<Node> handle;
  {
    ThreadScope attached(heap);
    node.emplace(heap, heap.make<Node>(1));
    handle = CheckedHandle<Node>(heap, node->get());
  }
  expect_error(ErrorCode::kMisuse, "not attached", [&] { handle.get(); });
  std::thread other([&] { handle.release(); });  // release needs no attached thread
  other.join();
  ThreadScope attached(heap);
  expect_error(ErrorCode::kStaleHandle, "released", [&] { handle.get(); });
}

TEST(CheckedHandle, NullAndBadPointers) {
  Heap heap(quiet_config());
  ThreadScope attached(heap);
  const CheckedHandle<Node> null;
  EXPECT_EQ(null.get(), nullptr);
  EXPECT_TRUE(CheckedHandle<Node>(heap, nullptr).null());
  expect_error(ErrorCode::kMisuse, "null", [&] { null.release(); });
  Node local(1);
  expect_error(ErrorCode::kNotAHeapPointer, "it is not a live object of this heap", [&] { CheckedHandle<Node>(heap, &local); });
  EXPECT_EQ(heap.stats().checked_handles, 0u);
}

}  // namespace
}  // namespace handoff::test

namespace handoff::test {
namespace {

// Threads make, resolve and release handles while collections clear the
// weak ones: a handle either resolves to its intact object or is stale,
// never anything else (ThreadSanitizer checks the slot table's locking).
TEST(CheckedHandle, ThreadsAndCollections) {
  HeapConfig config = env_config();
  config.initial_heap_bytes = 128 << 10;
  Heap heap(config);
  const std::size_t per_thread = sized(20000, 2000, 200);
  Watchdog watchdog(std::chrono::seconds(60), "CheckedHandle.ThreadsAndCollections");
  std::vector<std::thread> workers;
  std::atomic<std::size_t> resolved{0};
  for (unsigned t = 0; t < 2; ++t) {
    workers.emplace_back([&, t] {
      ThreadScope attached(heap);
      std::vector<CheckedHandle<Node>> mine;
      for (std::size_t i = 0; i < per_thread; ++i) {
        const std::uint64_t id = t * 1'000'000 + i;
        const HandleStrength strength = i % 2 == 0 ? HandleStrength::kStrong : HandleStrength::kWeak;
        mine.emplace_back(heap, heap.make<Node>(id), strength);
        const CheckedHandle<Node>& h = mine[mine.size() / 2];
        try {
          Node* node = h.get();
          ASSERT_TRUE(node->intact(node->id));
          resolved.fetch_add(1, std::memory_order_relaxed);
        } catch (const Error& e) {
          ASSERT_EQ(e.code(), ErrorCode::kStaleHandle);
        }
        if (mine.size() > 64) {
          try {
            mine.front().release();
          } catch (const Error& e) {
            ASSERT_EQ(e.code(), ErrorCode::kStaleHandle);  // a weak one already collected
          }
          mine.erase(mine.begin());
        }
      }
    });
  }
  for (auto& worker : workers) worker.join();
  EXPECT_GT(resolved.load(), 0u);
  EXPECT_GT(heap.stats().collections, 0u);
}

}  // namespace
}  // namespace handoff::test
