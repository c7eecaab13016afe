// Safepoints, parking, deferral and the stop-the-world entry.
//
// Design: the thread state word and the park/stop handshake.
//
//   What it protects: a collector scans a thread's stack and registers only
//   when the thread has published them and cannot change them (the range
//   above its published top, and the register copy) until the collection
//   ends; and a parked thread touches nothing of the heap's (its allocator
//   included, which the collector flushes) until the collection that
//   counted it as parked has ended.
//
//   States. Each MutatorThread has a state word (mutator_thread.h): running,
//   stopped or parked, written by the thread itself, plus kStopRequested,
//   set and cleared by the collector. Transitions:
//
//     running --park CAS--> parked --unpark CAS--> running   (flag clear)
//     running --safepoint, mutex--> stopped --mutex, flag clear--> running
//     running|F --park slow, mutex--> parked|F                (counted)
//     parked|F  --unpark slow: wait on cv until F clears--> running
//     any       --collector fetch_or F (mutex)--> any|F
//     any|F     --collector fetch_and ~F (mutex), notify--> any
//
//   The fast paths (ParkedScope, heap.h) are one CAS each on the thread's
//   own word: park running -> parked (release), unpark parked -> running
//   (acquire). No lock, and no line that another thread writes unless a
//   collection is pending (the word has a cache line of its own).
//
//   The collector (collect): under the mutex it sets collecting and
//   Heap::stop_requested_, then does fetch_or(F) (acq_rel) on every other
//   thread's word. A word that was parked counts that thread as parked now;
//   every other thread is running or already on its way to a safepoint, and
//   the collector waits on `cv` until stopped + parked covers all of them.
//   Why no store-buffering race: the thread's CAS and the collector's
//   fetch_or are read-modify-writes of the same word, so the word's
//   modification order puts one first. If the park CAS is first, the
//   fetch_or reads "parked" and synchronizes with the CAS's release: the
//   stack snapshot, written before the CAS in the caller's frame, is
//   visible, and the thread cannot leave (its unpark CAS expects a clear
//   flag). If the fetch_or is first, the park CAS fails, and the slow path
//   parks under the mutex and adds itself to `parked` (the collector waits
//   for it, so it is still in its stop phase). Either way exactly one side
//   counts the thread. So no seq_cst is needed, and no fence.
//
//   Why the collector never reads a changing stack: it reads a thread's
//   snapshot only after it saw the thread parked (fetch_or, acquire) or
//   stopped (under the mutex), and that thread's word keeps F until the
//   collection ends; leaving either state needs F clear (the unpark CAS
//   fails on F; a stopped thread waits for stop_requested_ to clear), and
//   re-parking, which rewrites the snapshot, needs the thread to have left.
//   Below its published top a parked thread keeps running; scan_words reads
//   only [top, base) and the register copy.
//
//   After the collection, under the mutex, the collector clears F on every
//   word (fetch_and, release) and stop_requested_, then notifies. An unpark
//   CAS that reads the cleared word synchronizes with that release, so the
//   collection's writes (the flushed allocator, marks, swept blocks)
//   happen before the thread touches the heap again. The slow paths go
//   through the mutex, which orders them the ordinary way.
//
//   What ThreadSanitizer sees: atomics and a mutex, all of which it models;
//   the conservative stack reads are exempt (scan_words), because a parked
//   thread writes its own frames below the top meanwhile. The handshake is
//   model-checked in papers/park.pml, with mutants (papers/collector.md,
//   "Parking").
//
//   Allocation: a park neither publishes the slice to the trigger nor
//   touches a shared counter. ParkedScope sets the countdown aside and
//   restores it on leaving; the slice is published by the allocation slow
//   path, so the trigger stays exact to within a slice per thread.
//
// Call tree:
//   Heap::collect / allocation slow path / DeferGC's last close
//     -> HeapInternals::collect(self, kind)         noinline; captures stack
//          -> mutex; request_stop: fetch_or F on each other thread
//          -> wait_for_world: until others are stopped or parked
//               (report_stall names a thread that is neither, on stderr)
//          -> HeapInternals::run_collection          (collection.cpp)
//          -> release_stop: fetch_and ~F; notify; run finalizers on self
//   Heap::safepoint (poll) -> Heap::safepoint_slow -> stop_at_safepoint
//   ParkedScope ctor (inline: capture_stack, CAS) -> Heap::park_slow (on F)
//   ParkedScope dtor (inline: CAS) -> Heap::unpark_slow (on F)
//   DeferGC/ForbidGC ctor/dtor
#include "heap_internals.h"

#include <handoff/check.h>

#include <handoff/sanitizer.h>

#include <pthread.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <exception>

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
  wait_stopped(self, lock);
}

void HeapInternals::wait_stopped(MutatorThread& self, std::unique_lock<std::mutex>& lock) {
  self.set_state(ThreadState::kStopped, std::memory_order_relaxed);  // the mutex orders it
  ++stopped;
  cv.notify_all();
  cv.wait(lock, [&] { return !heap.stop_requested_.load(std::memory_order_acquire); });
  --stopped;
  self.set_state(ThreadState::kRunning, std::memory_order_relaxed);
}

std::size_t HeapInternals::request_stop(const MutatorThread* self) {
  std::size_t found_parked = 0;
  for (MutatorThread* thread : threads) {
    if (thread == self) continue;
    // acq_rel: reading "parked" synchronizes with the park CAS (the stack
    // snapshot before it is visible); see the essay above.
    const std::uint32_t was = thread->state.fetch_or(ThreadState::kStopRequested, std::memory_order_acq_rel);
    HANDOFF_ASSERT((was & ThreadState::kStopRequested) == 0);  // no flag outlives its collection
    if ((was & ThreadState::kStateMask) == ThreadState::kParked) ++found_parked;
  }
  return found_parked;
}

void HeapInternals::release_stop(const MutatorThread* self) {
  for (MutatorThread* thread : threads) {
    // release: an unpark CAS that reads the cleared word sees the collection.
    if (thread != self) thread->state.fetch_and(~ThreadState::kStopRequested, std::memory_order_release);
  }
}

[[gnu::noinline]] bool HeapInternals::collect(MutatorThread* self, CollectionKind kind) {
  if (tls_records.in_destructor > 0) {
    fatal_misuse("a destructor started a collection: destructors run during sweeping and must not touch "
                 "the heap; do such work in a finalizer (see handoff/traced.h)");
  }
  if (self != nullptr && self->forbid_depth > 0 && kind != CollectionKind::kLastResort) {
    fatal_misuse("Heap::collect() called inside a ForbidGC scope on this thread; close the scope first");
  }
  // A parked caller keeps the snapshot it published when it parked: a
  // collection running now may be reading it.
  if (self != nullptr && self->park_depth == 0) capture_stack(self->stack);
  bool ran = false;
  std::exception_ptr failed;
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
      // A parked caller (a DeferGC closed inside a ParkedScope) is counted
      // as parked already and must not count as stopped too.
      if (self == nullptr || self->park_depth > 0) {
        cv.wait(lock, [&] { return !collecting; });
        return true;
      }
      wait_stopped(*self, lock);
      return true;
    }
    collecting = true;
    heap.stop_requested_.store(true, std::memory_order_release);
    parked = request_stop(self);
    const std::size_t others = threads.size() - (self != nullptr ? 1 : 0);
    wait_for_world(lock, self, others);
    // An exception from user code (run_collection) still ends the stop.
    try {
      run_collection(kind);
    } catch (...) {
      failed = std::current_exception();
    }
    release_stop(self);
    collecting = false;
    heap.stop_requested_.store(false, std::memory_order_release);
    ran = failed == nullptr;
  }
  cv.notify_all();
  if (failed != nullptr) std::rethrow_exception(failed);
  if (self != nullptr && !self->running_finalizers && kind != CollectionKind::kVerify) run_finalizers(*self);
  return ran;
}

// Only a report: the wait itself is unbounded, because a thread that
// neither polls nor parks may be reading heap objects, and collecting under
// it would be unsafe.
void HeapInternals::wait_for_world(std::unique_lock<std::mutex>& lock, const MutatorThread* self,
                                   std::size_t others) {
  const auto world_stopped = [&] { return stopped + parked == others; };
  if (config.stall_warn_ms == 0) {
    cv.wait(lock, world_stopped);
    return;
  }
  const auto start = std::chrono::steady_clock::now();
  while (!cv.wait_for(lock, std::chrono::milliseconds(config.stall_warn_ms), world_stopped)) {
    const auto waited = std::chrono::steady_clock::now() - start;
    report_stall(self, static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(waited).count()));
  }
}

// Mutex held: the states read here are those of threads the stop has not
// yet seen stop or park (a relaxed read suffices for a message).
void HeapInternals::report_stall(const MutatorThread* self, std::uint64_t waited_ms) const {
  for (const MutatorThread* thread : threads) {
    if (thread == self) continue;
    if ((thread->state.load(std::memory_order_relaxed) & ThreadState::kStateMask) != ThreadState::kRunning) continue;
    std::fprintf(stderr,
                 "handoff: a collection has waited %llu ms for thread %ld, which neither polls nor parks: a "
                 "thread that runs without allocating must call Heap::safepoint(), and one that blocks must do "
                 "so inside a ParkedScope (README, \"Rules for mutator threads\"); HANDOFF_STALL_WARN_MS=%llu\n",
                 static_cast<unsigned long long>(waited_ms), thread->os_thread_id,
                 static_cast<unsigned long long>(config.stall_warn_ms));
  }
  std::fflush(stderr);
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

// The park CAS found the collector's flag: a stop is under way and counts
// this thread as running. Park under the mutex and be counted; the snapshot
// was captured before the CAS, in the caller's frame.
void Heap::park_slow(MutatorThread& self) {
  auto& in = *internals_;
  bool counted = false;
  {
    std::lock_guard lock(in.mutex);
    // Under the mutex the flag cannot change: it is the stop now waiting
    // for us, or (cleared meanwhile) none.
    const std::uint32_t was = self.set_state(detail::ThreadState::kParked, std::memory_order_release);
    counted = (was & detail::ThreadState::kStopRequested) != 0;
    if (counted) ++in.parked;
  }
  if (counted) in.cv.notify_all();
}

// The unpark CAS found the flag: a collection that counted this thread as
// parked has not ended. Wait for it; then leave under the mutex.
void Heap::unpark_slow(MutatorThread& self) {
  auto& in = *internals_;
  std::unique_lock lock(in.mutex);
  in.cv.wait(lock, [&] {
    return (self.state.load(std::memory_order_acquire) & detail::ThreadState::kStopRequested) == 0;
  });
  self.set_state(detail::ThreadState::kRunning, std::memory_order_acquire);
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

// `self`: the opening thread's record then; `current`: the calling thread's now.
void close_deferral(detail::HeapInternals& in, detail::MutatorThread* self, const void* opener,
                    detail::MutatorThread* current, bool forbid) {
  const char* scope = forbid ? "ForbidGC" : "DeferGC";
  if (opener != &detail::tls_records) {
    detail::fatal_misuse(std::string(scope) +
                         " destroyed on a different thread than the one that opened it: a scope belongs to its "
                         "thread (that thread would count it open forever and could never detach); close it on "
                         "the thread that opened it");
  }
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
  if (!run) return;
  // A destructor: no exception may leave. Finalizers stay queued for the
  // next collect(), run_finalizers() or triggered collection (the flag
  // makes collect() skip them); an exception from a trace() ends here.
  const bool was_running = current != nullptr && current->running_finalizers;
  if (current != nullptr) current->running_finalizers = true;
  try {
    in.collect(current, detail::CollectionKind::kTriggered);
  } catch (...) {
    detail::fatal_misuse(std::string("an exception (from a trace()) escaped the collection that a closing ") + scope +
                         " ran; a scope's destructor cannot pass it on");
  }
  if (current != nullptr) current->running_finalizers = was_running;
}

}  // namespace

DeferGC::DeferGC(Heap& heap) : heap_(heap), self_(heap.find_current()), opener_(&detail::tls_records) {
  open_deferral(heap_, *heap_.internals_, self_, false);
}
DeferGC::~DeferGC() { close_deferral(*heap_.internals_, self_, opener_, heap_.find_current(), false); }

ForbidGC::ForbidGC(Heap& heap) : heap_(heap), self_(heap.find_current()), opener_(&detail::tls_records) {
  open_deferral(heap_, *heap_.internals_, self_, true);
}
ForbidGC::~ForbidGC() { close_deferral(*heap_.internals_, self_, opener_, heap_.find_current(), true); }

}  // namespace handoff
