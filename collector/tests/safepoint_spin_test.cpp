// The bounded spin of the stop-the-world handshake (safepoint_spin.h):
// HANDOFF_SAFEPOINT_SPIN_NS is read and a bad value refused; the spin ends
// at its bound and at the cap whatever is asked, returns as soon as it is
// done, and comes back holding the lock; and two threads that stop each
// other for collections lose nothing with the spin off, on and at its cap.
#include "safepoint_spin.h"

#include <handoff/error.h>
#include <handoff/heap.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr const char* kVariable = "HANDOFF_SAFEPOINT_SPIN_NS";

// Restores the variable as the test found it.
class EnvironmentVariable {
 public:
  EnvironmentVariable() {
    if (const char* value = std::getenv(kVariable)) saved_ = value;
  }
  ~EnvironmentVariable() {
    if (saved_.empty()) {
      ::unsetenv(kVariable);
    } else {
      ::setenv(kVariable, saved_.c_str(), 1);
    }
  }
  void set(const char* value) { ::setenv(kVariable, value, 1); }

 private:
  std::string saved_;
};

TEST(SafepointSpin, ReadFromTheEnvironmentAndListed) {
  EnvironmentVariable variable;
  variable.set("1234");
  EXPECT_EQ(handoff::HeapConfig::from_environment().safepoint_spin_ns, 1234u);
  variable.set("0");
  EXPECT_EQ(handoff::HeapConfig::from_environment().safepoint_spin_ns, 0u);
  variable.set("1000000");
  EXPECT_EQ(handoff::HeapConfig::from_environment().safepoint_spin_ns, 1000000u);
  bool listed = false;
  for (const auto& tunable : handoff::HeapConfig::table()) listed = listed || std::string(tunable.env) == kVariable;
  EXPECT_TRUE(listed);
}

TEST(SafepointSpin, RefusesMoreThanAMillisecondAndNonNumbers) {
  EnvironmentVariable variable;
  variable.set("1000001");
  try {
    (void)handoff::HeapConfig::from_environment();
    ADD_FAILURE() << "a spin over 1 ms was accepted";
  } catch (const handoff::Error& e) {
    EXPECT_EQ(e.code(), handoff::ErrorCode::kBadTunable);
    EXPECT_NE(std::string(e.what()).find(kVariable), std::string::npos) << e.what();
  }
  variable.set("fast");
  EXPECT_THROW((void)handoff::HeapConfig::from_environment(), handoff::Error);
}

TEST(SafepointSpin, EndsAtItsBound) {
  const auto start = Clock::now();
  EXPECT_FALSE(handoff::detail::spin_until(200'000, [] { return false; }));
  const auto spun = Clock::now() - start;
  if (handoff::detail::online_cpus() >= 2) EXPECT_GE(spun, 200us);
  EXPECT_LT(spun, 500ms);  // a loaded machine may deschedule us, not more
}

TEST(SafepointSpin, CappedAtAMillisecondWhateverIsAsked) {
  const auto start = Clock::now();
  EXPECT_FALSE(handoff::detail::spin_until(60'000'000'000, [] { return false; }));
  EXPECT_LT(Clock::now() - start, 500ms);
}

TEST(SafepointSpin, OffMeansNoSpin) {
  int calls = 0;
  EXPECT_FALSE(handoff::detail::spin_until(0, [&] { return ++calls > 0; }));
  EXPECT_EQ(calls, 0);
}

TEST(SafepointSpin, ReturnsOnceDone) {
  if (handoff::detail::online_cpus() < 2) GTEST_SKIP() << "one CPU: the spin is off";
  int calls = 0;
  EXPECT_TRUE(handoff::detail::spin_until(handoff::detail::kMaxSafepointSpinNs, [&] { return ++calls == 3; }));
  EXPECT_EQ(calls, 3);
}

// With the mutex held elsewhere until ready() turns true, the spin takes
// the lock once the holder lets go; with the spin off it blocks for it.
TEST(SafepointSpin, ComesBackHoldingTheLock) {
  for (std::uint64_t spin_ns : {std::uint64_t{0}, handoff::detail::kMaxSafepointSpinNs}) {
    std::mutex mutex;
    std::unique_lock lock(mutex);
    std::atomic<bool> ready{false};
    std::atomic<bool> holding{false};
    std::thread holder([&] {
      while (!holding.load()) std::this_thread::yield();
      std::lock_guard guard(mutex);
      ready.store(true);
      std::this_thread::sleep_for(100us);
    });
    handoff::detail::relock_after_spin(lock, spin_ns, [&] {
      holding.store(true);
      return ready.load();
    });
    EXPECT_TRUE(lock.owns_lock()) << spin_ns;
    lock.unlock();
    holding.store(true);
    holder.join();
  }
}

struct Cell {
  std::uint64_t value = 0;
  handoff::Member<Cell> next;
  void trace(handoff::Visitor& visitor) const { visitor.trace(next); }
};

// Two threads allocate and each collects every few hundred objects, so each
// stops the other in turn; a rooted chain per thread must survive every
// collection whatever the spin.
TEST(SafepointSpin, TwoThreadsStopEachOtherWithoutLoss) {
  for (std::uint64_t spin_ns : {std::uint64_t{0}, std::uint64_t{50'000}, handoff::detail::kMaxSafepointSpinNs}) {
    handoff::HeapConfig config = handoff::HeapConfig::from_environment();
    config.safepoint_spin_ns = spin_ns;
    handoff::Heap heap(config);
    std::atomic<int> lost{0};
    constexpr int kObjects = 10000;  // a multiple of 100
    const auto churn = [&](std::uint64_t seed) {
      handoff::ThreadScope scope(heap);
      handoff::Root<Cell> head(heap, heap.make<Cell>());
      head->value = seed;
      for (int i = 0; i < kObjects; ++i) {
        Cell* cell = heap.make<Cell>();
        cell->value = seed + static_cast<std::uint64_t>(i) + 1;
        if (i % 100 == 0) {
          cell->next = head->next;
          head->next = cell;
        }
        if (i % 250 == 249) heap.collect();
      }
      std::uint64_t expected = seed + kObjects - 99;
      for (const Cell* c = head->next.get(); c != nullptr; c = c->next.get(), expected -= 100) {
        if (c->value != expected) lost.fetch_add(1);
      }
      if (expected != seed + 1 - 100) lost.fetch_add(1);
    };
    std::thread other(churn, std::uint64_t{1} << 32);
    churn(std::uint64_t{2} << 32);
    other.join();
    EXPECT_EQ(lost.load(), 0) << spin_ns;
    // Each thread asks for 40; one that asks while the other collects stops
    // for that collection instead.
    EXPECT_GE(heap.stats().collections, 40u) << spin_ns;
  }
}

}  // namespace
