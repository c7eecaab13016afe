// handoff's libgc: the runtime shared by the GC_* entry points.
//
// One process-wide handoff::Heap serves every GC_* call. It is created by
// GC_init or by the first call that needs it, and never destroyed: threads
// may still allocate while the process exits, and a Heap destroyed with
// threads attached aborts.
//
// Objects. A client object is a handoff object (the cell after its 8-byte
// header), so GC_base, GC_size and interior pointers refer to what the
// client sees, never to the header. Its type header says which kind it is:
//
//   kind            TypeInfo                 traced as
//   NORMAL          ConservativeCell         every word of the cell, conservatively
//   PTRFREE         AtomicCell               never scanned
//   UNCOLLECTABLE   UncollectableCell        conservatively; also a root until GC_free
//   AUNCOLLECTABLE  AtomicUncollectableCell  never scanned; a root until GC_free
//
// Every request gets one extra byte, as libgc does when interior pointers
// are recognised (GC_all_interior_pointers): a pointer just past the end of
// an object still points into it, not into the next cell. Objects are
// 8-byte aligned (the header is 8 bytes in a 16-byte-aligned cell).
//
// Roots, found at every collection by one root scanner (Heap::add_root_scanner):
// the writable PT_LOAD segments of every loaded object but this library
// (dl_iterate_phdr, so dlopen'ed libraries count), GC_add_roots ranges, and
// uncollectable objects. Stacks and registers of registered threads are the
// collector's own roots.
#pragma once

#include <handoff/heap.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace handoff::compat {

enum class Kind : int { kPointerFree = 0, kNormal = 1, kUncollectable = 2, kAtomicUncollectable = 3 };

namespace runtime_internal {
extern std::atomic<Heap*> the_heap;  // set once, by create_heap
Heap& create_heap_once();
}  // namespace runtime_internal

// The heap, created on first use.
inline Heap& heap() {
  Heap* h = runtime_internal::the_heap.load(std::memory_order_acquire);
  if (h == nullptr) [[unlikely]] return runtime_internal::create_heap_once();
  return *h;
}
// The heap if it exists (nullptr before GC_init or the first allocation).
inline Heap* heap_if_created() noexcept { return runtime_internal::the_heap.load(std::memory_order_acquire); }
// Attaches the calling thread if it is not (the implicit registration libgc
// does for the main thread and for threads that allocate).
inline Heap& attached_heap() {
  Heap& h = heap();
  if (!h.current_thread_attached()) [[unlikely]] h.attach_current_thread();
  return h;
}

// Allocation of `size` client bytes of `kind`; nullptr when out of memory
// after GC_oom_fn declined (or for a size that overflows).
void* allocate(std::size_t size, Kind kind);
// The kind of a client object (the start of one), or -1 if it is none.
int kind_of(const void* object) noexcept;
// Usable bytes of a client object.
std::size_t capacity_of(const void* object) noexcept;

// Kinds made by GC_new_kind (kinds.cpp): the kind of a client-kind type
// header (-1 for any other), whether `kind` was made, and allocation of one
// (uncleared: the caller clears it as for kNormal).
int client_kind_of(const TypeInfo* type) noexcept;
// Objects of GC_malloc_explicitly_typed (kinds.cpp), of kind kNormal.
bool is_typed(const TypeInfo* type) noexcept;
bool is_client_kind(int kind) noexcept;
void* make_client_kind(Heap& h, std::size_t size, int kind);

// Uncollectable objects: roots until GC_free.
void add_uncollectable(void* object);
bool remove_uncollectable(void* object);

// Finalization (finalize.cpp): the post-mark hook, the queue's roots, and
// running queued finalizers on a mutator (allocation, GC_gcollect).
void finalization_post_mark(Heap::MarkPhase& phase, void* context);
void scan_finalizer_queue(Visitor& visitor);
bool finalizers_pending() noexcept;
int invoke_finalizers();
void after_collection();

// Messages through the client's warn procedure (GC_set_warn_proc).
void warn(const char* format, std::uintptr_t arg);
// "not supported by handoff's libgc: NAME" on stderr, then abort.
[[noreturn]] void unsupported(const char* name);
// A fatal client error: message on stderr, then abort (GC_on_abort first).
[[noreturn]] void fatal(const char* message);

// Collector settings chosen before the heap exists.
struct EarlySettings {
  std::uint64_t max_heap_bytes = 0;  // GC_set_max_heap_size
};
EarlySettings& early_settings() noexcept;

}  // namespace handoff::compat
