// Helpers shared by the heap tests: size scaling (optimised, sanitized or
// debug builds, and the small torture run), traced test types that carry a
// checksum, stack scrubbing for the conservative-scan tests, a watchdog that
// turns a hang into a failure, and the scenarios that both the plain tests
// and the torture fixture (torture_test.cpp) run.
#pragma once

#include "test_support.h"

#include <handoff/heap.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>

#include <pthread.h>
#include <sys/mman.h>

namespace handoff::test {

// ---- sizes ------------------------------------------------------------

// HANDOFF_TEST_SMALL=1 shrinks every test; CTest's collect-every run sets it
// because a collection per few allocations makes full sizes take minutes.
inline bool small_mode() {
  static const bool small = [] {
    const char* value = std::getenv("HANDOFF_TEST_SMALL");
    return value != nullptr && *value != '\0' && std::strcmp(value, "0") != 0;
  }();
  return small;
}

// Full sizes unless a sanitizer slows every access (and ASan's fake-stack
// scan every collection) by an order of magnitude.
inline constexpr bool kFullSizes = !kSanitized;

// `full` in plain builds (release and debug), `reduced` under a sanitizer,
// `small` in the small run.
inline std::size_t sized(std::size_t full, std::size_t reduced, std::size_t small) {
  if (small_mode()) return small;
  return kFullSizes ? full : reduced;
}

// Mutator threads for the multi-threaded tests: 4, or 2 under a sanitizer
// or in the small run (within the 2..8 the suite promises).
inline unsigned mutator_threads() { return small_mode() ? 2u : thread_count(); }

// Every explicit config starts from the environment so that the torture run
// (HANDOFF_COLLECT_EVERY and friends) reaches tests that tune something.
inline HeapConfig env_config() { return HeapConfig::from_environment(); }

// Tests whose assertions need memory to be reclaimed cannot hold in
// never-free mode; they skip rather than fail when someone runs the suite
// with HANDOFF_IMMORTAL=1.
#define HANDOFF_SKIP_IF_IMMORTAL(config) \
  if ((config).immortal != 0) GTEST_SKIP() << "needs reclamation; HANDOFF_IMMORTAL is set"

// ---- traced test types ------------------------------------------------

inline std::uint64_t mix64(std::uint64_t x) noexcept {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  return x ^ (x >> 33);
}

// A node of lists and trees. `intact(id)` fails when the cell was freed
// (ASan reports the read), reused for another object (the id or the type in
// the header differs), or overwritten (the checksum differs).
struct Node {
  Member<Node> next;
  Member<Node> other;
  std::uint64_t id;
  std::uint64_t value;
  std::uint64_t checksum;

  explicit Node(std::uint64_t node_id) : id(node_id), value(mix64(node_id)), checksum(sum(node_id, value)) {}
  static std::uint64_t sum(std::uint64_t node_id, std::uint64_t v) noexcept {
    return mix64(node_id ^ 0x5bd1e995ull) + v;
  }
  bool intact(std::uint64_t expected_id) const noexcept {
    return detail::type_of(this) == type_info_of<Node>() && id == expected_id && value == mix64(id) &&
           checksum == sum(id, value);
  }
  void trace(Visitor& visitor) const {
    visitor.trace(next);
    visitor.trace(other);
  }
};

using NodeArray = Array<Member<Node>>;
using Words = Array<std::uint64_t>;

inline void fill_words(Words& words, std::uint64_t tag) noexcept {
  for (std::size_t i = 0; i < words.size(); ++i) words[i] = pattern_word(tag, i);
}
inline bool words_intact(const Words& words, std::uint64_t tag, std::size_t length) noexcept {
  if (detail::type_of(&words) != type_info_of<Words>() || words.size() != length) return false;
  for (std::size_t i = 0; i < length; ++i) {
    if (words[i] != pattern_word(tag, i)) return false;
  }
  return true;
}

// ---- conservative-scan hygiene -----------------------------------------

// Zeroes the stack below the caller's frame, where dead frames of earlier
// calls may still hold pointers that would keep garbage alive.
[[gnu::noinline]] inline void scrub_stack() {
  std::uintptr_t words[8192];
  std::memset(words, 0, sizeof words);
  asm volatile("" : : "r"(words) : "memory");  // the stores must happen
}

// Scrubs before every test. Each test's heap tends to get the same addresses
// as the previous one's, and a test's frames reuse the stack where the
// previous test kept its pointers: slots a frame has not written yet would
// otherwise hold the previous test's pointers, now into this test's cells.
class StackScrubber : public ::testing::EmptyTestEventListener {
  void OnTestStart(const ::testing::TestInfo&) override { scrub_stack(); }
};
inline const bool kStackScrubberInstalled = [] {
  ::testing::UnitTest::GetInstance()->listeners().Append(new StackScrubber);
  return true;
}();

// Runs a test's body on a thread of its own. Under AddressSanitizer's
// detect_stack_use_after_return, frames with addressable locals live in a
// per-thread fake stack, which scrub_stack() does not reach and which the
// conservative scan reads (invariant 7). ASan hands out its fake frames in
// turn, so a new frame's unwritten slots hold words of frames long gone,
// earlier tests' among them, and a new heap tends to hand out the same
// addresses again: an earlier test's word can keep this test's dead object.
// (The eden and full reclamation tests in generational_test.cpp failed about
// one run in three under --gtest_repeat.) A test that expects an object to
// die runs where no earlier test left anything: on a new thread, whose fake
// stack is new, and whose real stack is new too. Not a std::thread: glibc
// gives a new thread the cached stack of one that exited, words included,
// and at -O0 the live frames' unwritten slots showed them (the finalizer
// test in generational_test.cpp failed in every debug run of the whole
// binary that way).
template <class Body>
void on_fresh_thread(Body body) {
  constexpr std::size_t kStackBytes = 8 << 20;
  void* stack = ::mmap(nullptr, kStackBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  ASSERT_NE(stack, MAP_FAILED) << "no memory for a thread's stack";
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstack(&attr, stack, kStackBytes);
  pthread_t thread;
  const int created = pthread_create(
      &thread, &attr,
      [](void* work) -> void* {
        (*static_cast<Body*>(work))();
        return nullptr;
      },
      &body);
  pthread_attr_destroy(&attr);
  if (created == 0) pthread_join(thread, nullptr);
  ::munmap(stack, kStackBytes);
  ASSERT_EQ(created, 0) << "pthread_create failed";
}

// Collects `times` times with the stack scrubbed before each.
[[gnu::noinline]] inline void scrub_and_collect(Heap& heap, int times = 3) {
  for (int i = 0; i < times; ++i) {
    scrub_stack();
    EXPECT_TRUE(heap.collect()) << "collect() was deferred";
  }
}

// ---- watchdog ------------------------------------------------------------

// Aborts the process with a message when the guarded scope takes longer
// than `limit`: a deadlocked collection then fails one test run instead of
// hanging CI until its global timeout.
class Watchdog {
 public:
  Watchdog(std::chrono::seconds limit, std::string what) : what_(std::move(what)) {
    thread_ = std::thread([this, limit] {
      std::unique_lock lock(mutex_);
      if (!done_cv_.wait_for(lock, limit, [this] { return done_; })) {
        std::fprintf(stderr, "watchdog: %s did not finish within %lld s\n", what_.c_str(),
                     static_cast<long long>(limit.count()));
        std::fflush(stderr);
        std::abort();
      }
    });
  }
  ~Watchdog() {
    {
      std::lock_guard lock(mutex_);
      done_ = true;
    }
    done_cv_.notify_all();
    thread_.join();
  }
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

 private:
  std::string what_;
  std::mutex mutex_;
  std::condition_variable done_cv_;
  bool done_ = false;
  std::thread thread_;
};

#if defined(NDEBUG)
inline constexpr bool kOptimised = !kSanitized;
#else
inline constexpr bool kOptimised = false;
#endif
inline std::chrono::seconds watchdog_limit() { return std::chrono::seconds(kOptimised ? 60 : 110); }

// ---- errors -------------------------------------------------------------

template <class F>
::testing::AssertionResult throws_error(F&& f, ErrorCode expected) {
  try {
    f();
  } catch (const Error& e) {
    if (e.code() == expected) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "threw " << e.what() << " (expected " << error_code_name(expected)
                                         << ")";
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "threw a non-handoff exception: " << e.what();
  }
  return ::testing::AssertionFailure() << "did not throw (expected " << error_code_name(expected) << ")";
}

// ---- scenarios shared with the torture fixture ---------------------------

enum class Size { kFull, kReduced };

void run_survival_scenario(const HeapConfig& config, Size size);       // heap_test.cpp
void run_stack_scan_scenario(const HeapConfig& config, Size size);     // handles_test.cpp
void run_weak_scenario(const HeapConfig& config, Size size);           // handles_test.cpp
void run_finalizer_scenario(const HeapConfig& config, Size size);      // finalizer_test.cpp
void run_detach_scenario(const HeapConfig& config, Size size);         // heap_threads_test.cpp

}  // namespace handoff::test
