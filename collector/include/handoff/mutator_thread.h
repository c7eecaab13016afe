// A mutator thread: one attached thread's record in one heap. Created by
// ThreadScope (or Heap::attach_current_thread) and destroyed on detach, which
// hands every cached block back (DESIGN.md invariant 5).
//
// States, in the thread's own state word (`state`, see ThreadState; the
// protocol is the essay at the top of collector/src/safepoint.cpp):
//   running   may allocate and touch heap objects; stops at safepoints
//   stopped   waiting at a safepoint for a collection to end
//   parked    inside a ParkedScope: blocked on something else, never touches
//             the heap; a collection proceeds without it and scans its stack
//             as it was at park time
// plus the collector's flag, stop requested, set on every other thread's
// word while a collection stops the world or runs. Running <-> parked is one
// CAS by the thread itself and needs no lock while the flag is clear; every
// other transition happens under the heap's mutex. A stopped or parked
// thread has published its stack top and a copy of its callee-saved
// registers (capture_stack) before its word says so; the marker scans them
// conservatively.
//
// The allocation countdown: the fast path subtracts each cell's size from
// `countdown`; when it goes negative the slow path publishes the bytes to the
// heap (the collection trigger), polls for a stop request and resets it to
// the slice size. So an allocating thread reaches a safepoint at least every
// `allocation_slice_bytes`; a thread that does not allocate calls
// Heap::safepoint() or parks. A parked thread's countdown is set aside
// (parked_countdown) and forced negative, so an allocation inside the scope
// reaches the slow path and is refused; leaving restores it, and the slice
// is published by the next slow path like any other.
#pragma once

#include <handoff/thread_allocator.h>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace handoff {

class Heap;

namespace detail {

// The values of a thread's state word: the thread's state in the low bits,
// written by the thread itself, and the collector's flag.
struct ThreadState {
  static constexpr std::uint32_t kRunning = 0;
  static constexpr std::uint32_t kStopped = 1;
  static constexpr std::uint32_t kParked = 2;
  static constexpr std::uint32_t kStateMask = 3;
  // Set by the collector on every thread but its own while it stops the
  // world or collects, cleared when the collection ends (both under the
  // heap's mutex). While it is set the thread leaves neither the parked
  // nor the stopped state.
  static constexpr std::uint32_t kStopRequested = 4;
};

// A cache line: the state word gets one of its own, so that parking writes
// no line that another thread writes.
inline constexpr std::size_t kThreadStateAlign = 64;

struct StackSnapshot {
  // [top, base) is scanned; `top` is the stack pointer when the thread
  // stopped or parked.
  const char* top = nullptr;
  const char* base = nullptr;
  // Callee-saved registers spilled at that moment (copied off the stack, so
  // they stay valid while a parked thread keeps running below `top`).
  static constexpr std::size_t kRegisterWords = 64;
  std::array<std::uintptr_t, kRegisterWords> registers{};
  std::size_t register_words = 0;
  // AddressSanitizer's fake stack of the thread (detect_stack_use_after_return
  // moves locals there); words that point into it are scanned through it.
  void* asan_fake_stack = nullptr;
};

class MutatorThread {
 public:
  MutatorThread(Heap& heap, Allocator& allocator);
  MutatorThread(const MutatorThread&) = delete;
  MutatorThread& operator=(const MutatorThread&) = delete;

  // Thread-written (CAS) when it parks and unparks; collector-written
  // (fetch_or/fetch_and under the heap mutex) only around a collection.
  alignas(kThreadStateAlign) std::atomic<std::uint32_t> state{ThreadState::kRunning};
  Heap& heap;
  ThreadAllocator allocator;
  std::int64_t countdown = 0;      // bytes left in this slice; < 0: slow path
  std::int64_t slice_bytes = 0;    // the slice the countdown started from
  std::uint64_t allocations = 0;   // counted on slow paths (collect-every mode)
  std::int64_t parked_countdown = 0;  // the countdown set aside while parked
  int forbid_depth = 0;            // ForbidGC scopes open on this thread
  int defer_depth = 0;             // DeferGC scopes open on this thread
  int park_depth = 0;              // ParkedScope nesting
  bool running_finalizers = false;
  StackSnapshot stack;             // valid while stopped or parked
  MutatorThread* next_on_thread = nullptr;  // this OS thread's records, one per heap
  long os_thread_id = 0;           // gettid() at attach, for messages

  // The thread's own transitions, keeping the collector's flag; returns
  // the word replaced. `order` is the CAS's on success.
  std::uint32_t set_state(std::uint32_t to, std::memory_order order) noexcept {
    std::uint32_t word = state.load(std::memory_order_relaxed);
    while (!state.compare_exchange_weak(word, (word & ThreadState::kStopRequested) | to, order,
                                        std::memory_order_relaxed)) {
    }
    return word;
  }
};

// Captures the caller's stack top and callee-saved registers into `out`.
// Must be called from the frame that stays live while the stack is scanned
// (a safepoint waits inside its own callee; a park copies the registers).
void capture_stack(StackSnapshot& out) noexcept;

// Per OS thread: the records of the heaps it is attached to, and a one-entry
// cache so that the allocation fast path finds its record with one compare.
// Trivially destructible, so the fast path reads it without a TLS guard; the
// exit hook that detaches a thread still attached lives in heap.cpp.
struct ThreadRecords {
  const Heap* cached_heap = nullptr;
  MutatorThread* cached = nullptr;
  MutatorThread* head = nullptr;
  int in_destructor = 0;  // > 0 while a sweep runs destructors on this thread
};
inline thread_local ThreadRecords tls_records;

}  // namespace detail
}  // namespace handoff
