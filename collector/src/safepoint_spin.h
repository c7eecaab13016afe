// The bounded spin before the stop-the-world handshake blocks.
//
// Design. Two sides of the handshake wait for each other (safepoint.cpp):
// the collector for "every other thread stopped or parked", and a stopped
// thread for "the stop has ended". Both used to block on the heap's
// condition variable at once, so with two busy threads each collection paid
// a futex sleep and wake on both sides, and the woken thread's scheduling
// latency, although the thread waited for is usually running on another
// core and arrives within microseconds. Here each side first spins for at
// most HeapConfig::safepoint_spin_ns (HANDOFF_SAFEPOINT_SPIN_NS; 0 = off),
// with a pause instruction between reads, and then takes the blocking path
// it always took.
//
//   Why it is correct: the spin is only a hint. It reads atomics (each
//   waited-for thread's state word, Heap::stop_requested_) with the mutex
//   released, exactly as a condition-variable wait releases it, and then
//   relocks and evaluates the real predicate (stopped + parked, or the stop
//   flag) under the mutex through the same cv.wait as before, which returns
//   at once when the predicate holds. So every handover is still ordered by
//   the mutex or by the state word's read-modify-writes, as the essays in
//   heap_internals.h and safepoint.cpp argue; a spin that ends early, late
//   or on a stale value only changes how long the blocking wait lasts. What
//   may change while the mutex is released is what may change during a
//   cv.wait: the thread list does not (attach and detach wait until
//   `collecting` is false), only the counters the waited-for threads
//   update, and a notify_all with no sleeping waiter costs no system call.
//
//   Why it is bounded: the deadline is measured on the steady clock, read
//   every kPausesPerClockRead pauses, so no side spins longer than
//   safepoint_spin_ns (a few microseconds; HeapConfig::from_environment
//   refuses more than kMaxSafepointSpinNs, and spin_until caps a larger
//   configured value at it) however late, parked or descheduled the other side
//   is; then it sleeps. With more waited-for threads than the other cores
//   can run, the collector does not spin at all (its core may be the one a
//   waited-for thread needs), and on one CPU nobody spins.
//
//   What ThreadSanitizer sees: atomic loads and the mutex; nothing new.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <thread>

namespace handoff::detail {

// More than a millisecond of spinning is a time slice given away.
inline constexpr std::uint64_t kMaxSafepointSpinNs = 1'000'000;

inline void cpu_pause() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

inline unsigned online_cpus() noexcept {
  static const unsigned cpus = std::thread::hardware_concurrency();
  return cpus;
}

// Whether `waiters` threads, each wanting a core of its own while this one
// spins, can all run at once.
inline bool spin_leaves_cores_for(std::size_t waiters) noexcept { return waiters + 1 <= online_cpus(); }

// Spins until done() or until spin_ns have passed; returns done()'s last
// value. done() reads atomics only (no lock held): a hint for the caller's
// locked re-check.
template <class Done>
bool spin_until(std::uint64_t spin_ns, Done done) {
  constexpr int kPausesPerClockRead = 16;
  if (spin_ns == 0 || online_cpus() < 2) return false;
  if (spin_ns > kMaxSafepointSpinNs) spin_ns = kMaxSafepointSpinNs;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::nanoseconds(spin_ns);
  for (;;) {
    for (int i = 0; i < kPausesPerClockRead; ++i) {
      if (done()) return true;
      cpu_pause();
    }
    if (std::chrono::steady_clock::now() >= deadline) return done();
  }
}

// Releases `lock`, spins (spin_until) until ready() and the mutex is free,
// and returns with `lock` held again, after the spin or by blocking. Taking
// the mutex with try_lock once ready() holds keeps the spinner from
// blocking on a mutex that its releaser is about to unlock (a blocked
// locker costs the releaser a futex wake, the cost the spin is there to
// save).
template <class Ready>
void relock_after_spin(std::unique_lock<std::mutex>& lock, std::uint64_t spin_ns, Ready ready) {
  lock.unlock();
  if (!spin_until(spin_ns, [&] { return ready() && lock.try_lock(); })) lock.lock();
}

}  // namespace handoff::detail
