// Safepoints, parking, deferral and the stop-the-world entry. The protocol
// is described in heap_internals.h.
//
// Call tree:
//   Heap::collect / allocation slow path / DeferGC's last close
//     -> HeapInternals::collect(self, kind)         noinline; captures stack
//          -> mutex; wait until others are stopped or parked
//          -> HeapInternals::run_collection          (collection.cpp)
//          -> notify; run finalizers on self afterwards
//   Heap::safepoint (poll) -> Heap::safepoint_slow -> stop_at_safepoint
//   ParkedScope ctor/dtor, DeferGC/ForbidGC ctor/dtor
#include "heap_internals.h"

#include <handoff/check.h>

#include <handoff/sanitizer.h>

#include <pthread.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace handoff::detail {
namespace {

// A frame address below the caller's frame (and so below its spills).
[[gnu::noinline]] const void* probe_below() noexcept { return __builtin_frame_address(0); }

}  // namespace

// Spills the callee-saved registers into this frame (__builtin_unwind_init)
// and copies the frame's words into `out`, so a value that lives only in a
// register of some caller is scanned even after this frame is gone (a parked
// thread keeps running below `top`). `top` is the caller's stack pointer at
// the call: frames above it do not change until the thread resumes.
[[gnu::noinline]] __attribute__((no_sanitize("address", "thread"))) void capture_stack(StackSnapshot& out) noexcept {
  __builtin_unwind_init();
  auto* frame = static_cast<const char*>(__builtin_frame_address(0));
  const auto* low = static_cast<const char*>(probe_below());
  const std::size_t limit = StackSnapshot::kRegisterWords * sizeof(std::uintptr_t);
  if (low < frame - limit) low = frame - limit;
  low = reinterpret_cast<const char*>(reinterpret_cast<std::uintptr_t>(low) & ~(sizeof(std::uintptr_t) - 1));
  std::size_t words = 0;
  for (const char* p = low; p < frame && words < StackSnapshot::kRegisterWords; p += sizeof(std::uintptr_t)) {
    out.registers[words++] = *reinterpret_cast<const volatile std::uintptr_t*>(p);
  }
  out.register_words = words;
#if defined(HANDOFF_ASAN)
  out.asan_fake_stack = __asan_get_current_fake_stack();
#endif
#if defined(__x86_64__)
  out.top = frame + 2 * sizeof(void*);  // above the saved frame pointer and return address
#else
  out.top = frame;
#endif
}

const char* current_stack_base() {
  pthread_attr_t attr;
  void* address = nullptr;
  std::size_t size = 0;
  if (pthread_getattr_np(pthread_self(), &attr) == 0) {
    pthread_attr_getstack(&attr, &address, &size);
    pthread_attr_destroy(&attr);
  }
  HANDOFF_CHECK(address != nullptr, "pthread_getattr_np could not report this thread's stack");
  return static_cast<const char*>(address) + size;
}

[[noreturn]] void fatal_misuse(const std::string& message) {
  std::fprintf(stderr, "handoff: misuse: %s\n", message.c_str());
  std::fflush(stderr);
  std::abort();
}

[[gnu::noinline]] void HeapInternals::stop_at_safepoint(MutatorThread& self) {
  capture_stack(self.stack);
  std::unique_lock lock(mutex);
  if (!heap.stop_requested_.load(std::memory_order_acquire)) return;
  self.state = MutatorState::kStopped;
  ++stopped;
  cv.notify_all();
  cv.wait(lock, [&] { return !heap.stop_requested_.load(std::memory_order_acquire); });
  --stopped;
  self.state = MutatorState::kRunning;
}

[[gnu::noinline]] bool HeapInternals::collect(MutatorThread* self, CollectionKind kind) {
  if (tls_records.in_destructor > 0) {
    fatal_misuse("a destructor started a collection: destructors run during sweeping and must not touch "
                 "the heap; do such work in a finalizer (see handoff/traced.h)");
  }
  if (self != nullptr && self->forbid_depth > 0 && kind != CollectionKind::kLastResort) {
    fatal_misuse("Heap::collect() called inside a ForbidGC scope on this thread; close the scope first");
  }
  if (self != nullptr) capture_stack(self->stack);
  bool ran = false;
  {
    std::unique_lock lock(mutex);
    if (deferrals > 0) {
      pending = true;
      std::lock_guard stats(stats_mutex);
      ++counters.deferred_collections;
      return false;
    }
    if (collecting) {
      // Another thread is collecting and waits for us: this is our safepoint.
      if (self == nullptr) {
        cv.wait(lock, [&] { return !collecting; });
        return true;
      }
      self->state = MutatorState::kStopped;
      ++stopped;
      cv.notify_all();
      cv.wait(lock, [&] { return !heap.stop_requested_.load(std::memory_order_acquire); });
      --stopped;
      self->state = MutatorState::kRunning;
      return true;
    }
    collecting = true;
    heap.stop_requested_.store(true, std::memory_order_release);
    const std::size_t others = threads.size() - (self != nullptr ? 1 : 0);
    cv.wait(lock, [&] { return stopped + parked == others; });
    run_collection(kind);
    collecting = false;
    heap.stop_requested_.store(false, std::memory_order_release);
    ran = true;
  }
  cv.notify_all();
  if (self != nullptr && !self->running_finalizers && kind != CollectionKind::kVerify) run_finalizers(*self);
  return ran;
}

void HeapInternals::publish_allocation(MutatorThread& self) noexcept {
  const std::int64_t used = self.slice_bytes - self.countdown;
  if (used > 0) {
    bytes_since_collection.fetch_add(static_cast<std::uint64_t>(used), std::memory_order_relaxed);
    bytes_allocated.fetch_add(static_cast<std::uint64_t>(used), std::memory_order_relaxed);
  }
  self.slice_bytes = 0;
  self.countdown = 0;
}

bool HeapInternals::should_collect() noexcept {
  if (config.collect_every != 0) {
    return allocation_count.fetch_add(1, std::memory_order_relaxed) % config.collect_every ==
           config.collect_every - 1;
  }
  return bytes_since_collection.load(std::memory_order_relaxed) >= trigger_bytes.load(std::memory_order_relaxed);
}

}  // namespace handoff::detail

namespace handoff {

void Heap::safepoint_slow() {
  MutatorThread* self = find_current();
  if (self != nullptr && self->park_depth == 0) internals_->stop_at_safepoint(*self);
}

detail::MutatorThread* Heap::park_begin() {
  auto& self = current_or_throw("ParkedScope");
  return self.park_depth++ > 0 ? nullptr : &self;
}

void Heap::park_publish(MutatorThread& self) {
  auto& in = *internals_;
  // A thread that parks often (a queue consumer) would otherwise hide most
  // of its allocation from the trigger.
  in.publish_allocation(self);
  {
    std::lock_guard lock(in.mutex);
    self.state = detail::MutatorState::kParked;
    ++in.parked;
  }
  in.cv.notify_all();
  self.countdown = -1;  // the next allocation takes the slow path, which refuses it
}

ParkedScope::~ParkedScope() {
  auto& self = *heap_.find_current();
  if (--self.park_depth > 0) return;
  auto& in = *heap_.internals_;
  std::unique_lock lock(in.mutex);
  // A collection that counted us as parked may still be running.
  in.cv.wait(lock, [&] { return !heap_.stop_requested_.load(std::memory_order_acquire); });
  --in.parked;
  self.state = detail::MutatorState::kRunning;
  self.countdown = 0;
  self.slice_bytes = 0;
}

namespace {

// Opens a deferral: waits out a collection in progress (as a safepoint when
// the thread is attached), then counts the scope.
void open_deferral(Heap& heap, detail::HeapInternals& in, detail::MutatorThread* self, bool forbid) {
  for (;;) {
    {
      std::lock_guard lock(in.mutex);
      if (!in.collecting) {
        ++in.deferrals;
        break;
      }
    }
    if (self != nullptr && self->park_depth == 0) {
      heap.safepoint();
    } else {
      std::unique_lock lock(in.mutex);
      in.cv.wait(lock, [&] { return !in.collecting; });
    }
  }
  if (self != nullptr) {
    ++self->defer_depth;
    if (forbid) ++self->forbid_depth;
  }
}

void close_deferral(detail::HeapInternals& in, detail::MutatorThread* self, bool forbid) {
  if (self != nullptr) {
    --self->defer_depth;
    if (forbid) --self->forbid_depth;
  }
  bool run = false;
  {
    std::lock_guard lock(in.mutex);
    run = --in.deferrals == 0 && in.pending;
    if (run) in.pending = false;
  }
  if (run) in.collect(self, detail::CollectionKind::kTriggered);
}

}  // namespace

DeferGC::DeferGC(Heap& heap) : heap_(heap) {
  open_deferral(heap_, *heap_.internals_, heap_.find_current(), false);
}
DeferGC::~DeferGC() { close_deferral(*heap_.internals_, heap_.find_current(), false); }

ForbidGC::ForbidGC(Heap& heap) : heap_(heap) {
  open_deferral(heap_, *heap_.internals_, heap_.find_current(), true);
}
ForbidGC::~ForbidGC() { close_deferral(*heap_.internals_, heap_.find_current(), true); }

}  // namespace handoff
