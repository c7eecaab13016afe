// A mutator thread: one attached thread's record in one heap. Created by
// ThreadScope (or Heap::attach_current_thread) and destroyed on detach, which
// hands every cached block back (DESIGN.md invariant 5).
//
// States, changed only under the heap's mutex:
//   running   may allocate and touch heap objects; stops at safepoints
//   stopped   waiting at a safepoint for a collection to end
//   parked    inside a ParkedScope: blocked on something else, never touches
//             the heap; a collection proceeds without it and scans its stack
//             as it was at park time
// A stopped or parked thread has published its stack top and a copy of its
// callee-saved registers (capture_registers), which the marker scans
// conservatively.
//
// The allocation countdown: the fast path subtracts each cell's size from
// `countdown`; when it goes negative the slow path publishes the bytes to the
// heap (the collection trigger), polls for a stop request and resets it to
// the slice size. So an allocating thread reaches a safepoint at least every
// `allocation_slice_bytes`; a thread that does not allocate calls
// Heap::safepoint() or parks.
#pragma once

#include <handoff/thread_allocator.h>

#include <array>
#include <cstddef>
#include <cstdint>

namespace handoff {

class Heap;

namespace detail {

enum class MutatorState : unsigned char { kRunning, kStopped, kParked };

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

  Heap& heap;
  ThreadAllocator allocator;
  std::int64_t countdown = 0;      // bytes left in this slice; < 0: slow path
  std::int64_t slice_bytes = 0;    // the slice the countdown started from
  std::uint64_t allocations = 0;   // counted on slow paths (collect-every mode)
  MutatorState state = MutatorState::kRunning;  // heap mutex
  int forbid_depth = 0;            // ForbidGC scopes open on this thread
  int defer_depth = 0;             // DeferGC scopes open on this thread
  int park_depth = 0;              // ParkedScope nesting
  bool running_finalizers = false;
  StackSnapshot stack;             // valid while stopped or parked
  MutatorThread* next_on_thread = nullptr;  // this OS thread's records, one per heap
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
