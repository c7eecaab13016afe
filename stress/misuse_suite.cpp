// The misuse suite: mistakes a user of the heap can make, each run in a child
// process, each required to end in the documented way.
//
//   misuse_suite CASE        runs CASE in a child (this program re-executed
//                            with --child CASE) and judges how it ended
//   misuse_suite --all       every case; a summary at the end
//   misuse_suite --list      the case names
//
// A case ends in one of three documented ways:
//   throws   handoff::Error with the expected ErrorCode; its message must
//            contain the expected text;
//   aborts   SIGABRT, with the expected text on stderr (fatal misuse the API
//            documents as an abort: a heap destroyed with threads attached,
//            a collection inside ForbidGC, a destructor touching the heap);
//   returns  the case ran to its end and printed the expected line (a
//            documented non-throwing answer: try_make's nullptr, say).
// Whatever the expectation, a child killed by SIGSEGV or SIGBUS, a sanitizer
// report or a hang fails the case. On failure the expected and the actual
// ending and output are printed. Exit status: 0 pass, 1 fail, 77 skipped (a
// case that needs a debug build, run in a release build), 2 bad usage.
#include "misuse_harness.h"

#include <handoff/allocator.h>
#include <handoff/checked_handle.h>
#include <handoff/ephemeron.h>
#include <handoff/external_memory.h>
#include <handoff/heap.h>


#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

using handoff::Error;
using handoff::ErrorCode;
using handoff::Heap;
using handoff::HeapConfig;
using handoff::Member;
using handoff::Root;
using handoff::ThreadScope;
using handoff::Weak;
using handoff::misuse::say;
using handoff::misuse::skip;

// ---- types the cases use ---------------------------------------------------

struct Node {
  Member<Node> next;
  std::uint64_t a = 1, b = 2, c = 3;
  void trace(handoff::Visitor& v) const { v.trace(next); }
};

struct Big : handoff::Leaf {
  std::uint64_t words[1024] = {};
};

Heap* g_heap = nullptr;  // for destructors that (wrongly) reach the heap

struct AllocatesInDestructor : handoff::Leaf {
  ~AllocatesInDestructor() { g_heap->make<Node>(); }
};
struct RootsInDestructor : handoff::Leaf {
  ~RootsInDestructor() { Root<Node> r(*g_heap, nullptr); }
};
struct CollectsInDestructor : handoff::Leaf {
  ~CollectsInDestructor() { g_heap->collect(); }
};

struct ThrowingConstructor {
  Member<Node> child;
  explicit ThrowingConstructor(Heap& heap) : child(heap.make<Node>()) { throw std::runtime_error("constructor failed"); }
  void trace(handoff::Visitor& v) const { v.trace(child); }
};

HeapConfig quiet_config() {
  HeapConfig config;  // defaults, not the environment: cases set what they test
  config.sync_sweep = 1;
  return config;
}

// The address of a fresh object, hidden from the conservative stack scan
// (stored complemented), from a frame that is gone when the caller collects.
template <class T>
[[gnu::noinline]] std::uintptr_t hidden_new(Heap& heap) {
  return ~reinterpret_cast<std::uintptr_t>(heap.make<T>());
}
template <class T>
T* reveal(std::uintptr_t hidden) {
  return reinterpret_cast<T*>(~hidden);
}
// Overwrites the stack below the caller, so no stale copy of a pointer
// survives in a dead frame.
[[gnu::noinline]] void scrub_stack() {
  volatile char buffer[16384];
  for (auto& b : buffer) b = 0;
}

// ---- handles -----------------------------------------------------------------

MISUSE_CASE(root_of_stack_object, kThrows, kNotAHeapPointer, "it is not a live object of this heap") {
  Heap heap(quiet_config());
  ThreadScope attached(heap);
  Node local;
  Root<Node> root(heap, &local);
}

MISUSE_CASE(root_of_malloc_memory, kThrows, kNotAHeapPointer, "it is not a live object of this heap") {
  Heap heap(quiet_config());
  ThreadScope attached(heap);
  auto owned = std::make_unique<Node>();
  Root<Node> root(heap, owned.get());
}

MISUSE_CASE(root_of_interior_pointer, kThrows, kNotAHeapPointer, "it points inside the object at") {
  Heap heap(quiet_config());
  ThreadScope attached(heap);
  Node* node = heap.make<Node>();
  Root<Node> root(heap, reinterpret_cast<Node*>(&node->b));
}

MISUSE_CASE(root_of_freed_cell, kThrows, kNotAHeapPointer, "it is not a live object of this heap") {
  Heap heap(quiet_config());
  ThreadScope attached(heap);
  const std::uintptr_t hidden = hidden_new<Node>(heap);
  scrub_stack();
  heap.collect();  // synchronous sweep: the cell is free now
  Root<Node> root(heap, reveal<Node>(hidden));
}

MISUSE_CASE(root_of_interior_of_freed_cell, kThrows, kNotAHeapPointer, "it is not a live object of this heap") {
  Heap heap(quiet_config());
  ThreadScope attached(heap);
  const std::uintptr_t hidden = hidden_new<Node>(heap);
  scrub_stack();
  heap.collect();
  Root<Node> root(heap, reinterpret_cast<Node*>(&reveal<Node>(hidden)->b));
}

MISUSE_CASE(root_of_other_heaps_object, kThrows, kNotAHeapPointer, "it is not a live object of this heap") {
  Heap first(quiet_config());
  Heap second(quiet_config());
  ThreadScope a(first);
  ThreadScope b(second);
  Node* node = first.make<Node>();
  Root<Node> root(second, node);
}

MISUSE_CASE(weak_of_stack_object, kThrows, kNotAHeapPointer, "Weak of") {
  Heap heap(quiet_config());
  ThreadScope attached(heap);
  Node local;
  Weak<Node> weak(heap, &local);
}

MISUSE_CASE(root_set_to_stack_object, kThrows, kNotAHeapPointer, "it is not a live object of this heap") {
  Heap heap(quiet_config());
  ThreadScope attached(heap);
  Root<Node> root(heap, heap.make<Node>());
  Node local;
  root.set(&local);
}

MISUSE_CASE(root_set_without_heap, kThrows, kMisuse, "Root::set on a handle that belongs to no heap") {
  Heap heap(quiet_config());
  ThreadScope attached(heap);
  Root<Node> root;
  root.set(heap.make<Node>());
}

MISUSE_CASE(root_released_twice, kThrows, kMisuse, "Root::release: this handle was already released") {
  Heap heap(quiet_config());
  ThreadScope attached(heap);
  Root<Node> root(heap, heap.make<Node>());
  root.release();
  root.release();
}

MISUSE_CASE(root_released_never_held, kThrows, kMisuse, "already released (or never held anything)") {
  Root<Node> root;
  root.release();
}

// ---- handles that outlive their heap -------------------------------------------

// Points `root` at an object of a heap that is then destroyed. (An out
// parameter: returning an orphaned Root would copy it, which throws.)
void orphan(Root<Node>& root) {
  auto heap = std::make_unique<Heap>(quiet_config());
  heap->attach_current_thread();
  root = Root<Node>(*heap, heap->make<Node>());
  heap->detach_current_thread();
  heap.reset();
}

MISUSE_CASE(root_get_after_heap_destroyed, kThrows, kMisuse, "Root::get: the heap this handle belonged to was destroyed") {
  Root<Node> root;
  orphan(root);
  root.get();
}

MISUSE_CASE(root_set_after_heap_destroyed, kThrows, kMisuse, "Root::set: the heap this handle belonged to was destroyed") {
  Root<Node> root;
  orphan(root);
  root.set(nullptr);
}

MISUSE_CASE(root_release_after_heap_destroyed, kThrows, kMisuse, "Root::release: the heap this handle belonged to was destroyed") {
  Root<Node> root;
  orphan(root);
  root.release();
}

MISUSE_CASE(root_copied_after_heap_destroyed, kThrows, kMisuse, "Root copy: the heap this handle belonged to was destroyed") {
  Root<Node> root;
  orphan(root);
  Root<Node> copy(root);
  copy.get();
}

MISUSE_CASE(weak_get_after_heap_destroyed, kThrows, kMisuse, "Weak::get: the heap this handle belonged to was destroyed") {
  auto heap = std::make_unique<Heap>(quiet_config());
  heap->attach_current_thread();
  auto weak = std::make_unique<Weak<Node>>(*heap, heap->make<Node>());
  heap->detach_current_thread();
  heap.reset();
  weak->get();
}

// ---- threads -------------------------------------------------------------------

// ~Heap detaches its own thread and waits (HANDOFF_DESTROY_WAIT_MS) for the
// others; one that stays attached past the wait is named, and aborts.
MISUSE_CASE(heap_destroyed_with_thread_attached, kAborts, kNone, "Heap destroyed while 1 thread(s) (") {
  HeapConfig config = quiet_config();
  config.destroy_wait_ms = 50;
  auto heap = std::make_unique<Heap>(config);
  std::atomic<bool> attached{false};
  std::thread([&] {
    ThreadScope scope(*heap);
    handoff::ParkedScope parked(*heap);
    attached.store(true);
    for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));  // until the abort
  }).detach();
  while (!attached.load()) std::this_thread::yield();
  heap.reset();
}

MISUSE_CASE(make_from_unattached_thread, kThrows, kMisuse, "allocation from a thread that is not attached to this heap") {
  Heap heap(quiet_config());
  heap.make<Node>();
}

MISUSE_CASE(try_make_from_unattached_thread, kThrows, kMisuse, "allocation from a thread that is not attached to this heap") {
  Heap heap(quiet_config());
  heap.try_make<Node>();  // misuse is not out-of-memory: it throws, no nullptr
}

MISUSE_CASE(make_from_thread_attached_elsewhere, kThrows, kMisuse, "allocation from a thread that is not attached to this heap") {
  Heap first(quiet_config());
  Heap second(quiet_config());
  ThreadScope attached(first);
  second.make<Node>();
}

MISUSE_CASE(make_after_detach, kThrows, kMisuse, "allocation from a thread that is not attached to this heap") {
  Heap heap(quiet_config());
  { ThreadScope attached(heap); heap.make<Node>(); }
  heap.make<Node>();
}

MISUSE_CASE(run_finalizers_unattached, kThrows, kMisuse, "run_finalizers from a thread that is not attached") {
  Heap heap(quiet_config());
  heap.run_finalizers();
}

MISUSE_CASE(parked_scope_unattached, kThrows, kMisuse, "ParkedScope from a thread that is not attached") {
  Heap heap(quiet_config());
  handoff::ParkedScope parked(heap);
}

MISUSE_CASE(attach_twice, kThrows, kMisuse, "attach_current_thread: this thread is already attached to this heap") {
  Heap heap(quiet_config());
  heap.attach_current_thread();
  try {
    heap.attach_current_thread();
  } catch (...) {
    heap.detach_current_thread();
    throw;
  }
}

MISUSE_CASE(thread_scope_nested, kThrows, kMisuse, "this thread is already attached to this heap") {
  Heap heap(quiet_config());
  ThreadScope outer(heap);
  ThreadScope inner(heap);
}

MISUSE_CASE(detach_twice, kThrows, kMisuse, "detach_current_thread: this thread is not attached to this heap (detached twice?)") {
  Heap heap(quiet_config());
  heap.attach_current_thread();
  heap.detach_current_thread();
  heap.detach_current_thread();
}

MISUSE_CASE(detach_never_attached, kThrows, kMisuse, "detach_current_thread: this thread is not attached") {
  Heap heap(quiet_config());
  heap.detach_current_thread();
}

MISUSE_CASE(detach_inside_parked_scope, kThrows, kMisuse, "detach_current_thread inside a ParkedScope, DeferGC or ForbidGC scope") {
  Heap heap(quiet_config());
  heap.attach_current_thread();
  try {
    handoff::ParkedScope parked(heap);
    heap.detach_current_thread();
  } catch (...) {
    heap.detach_current_thread();  // the scope is closed now: this one succeeds
    throw;
  }
}

MISUSE_CASE(detach_inside_defer_gc, kThrows, kMisuse, "detach_current_thread inside a ParkedScope, DeferGC or ForbidGC scope") {
  Heap heap(quiet_config());
  heap.attach_current_thread();
  try {
    handoff::DeferGC defer(heap);
    heap.detach_current_thread();
  } catch (...) {
    heap.detach_current_thread();
    throw;
  }
}

MISUSE_CASE(make_while_parked, kThrows, kMisuse, "allocation inside a ParkedScope") {
  Heap heap(quiet_config());
  ThreadScope attached(heap);
  heap.make<Node>();  // the fast path is warm: the park must still be noticed
  handoff::ParkedScope parked(heap);
  heap.make<Node>();
}

MISUSE_CASE(collect_while_parked, kThrows, kMisuse, "Heap::collect() inside a ParkedScope") {
  Heap heap(quiet_config());
  ThreadScope attached(heap);
  handoff::ParkedScope parked(heap);
  heap.collect();
}

MISUSE_CASE(collect_inside_forbid_gc, kAborts, kNone, "Heap::collect() called inside a ForbidGC scope on this thread") {
  Heap heap(quiet_config());
  ThreadScope attached(heap);
  handoff::ForbidGC forbid(heap);
  heap.collect();
}

// ---- sizes -----------------------------------------------------------------------

MISUSE_CASE(make_array_length_overflows, kThrows, kSizeOverflow, "elements of 8 bytes: the size overflows") {
  Heap heap(quiet_config());
  ThreadScope attached(heap);
  volatile std::size_t length = std::numeric_limits<std::size_t>::max() / 4;
  heap.make_array<std::uint64_t>(length);
}

MISUSE_CASE(make_array_just_too_large, kThrows, kSizeOverflow, "the size overflows once headers and page rounding are added") {
  Heap heap(quiet_config());
  ThreadScope attached(heap);
  volatile std::size_t length = std::numeric_limits<std::size_t>::max() - 64;  // opaque to the optimizer
  heap.make_array<std::uint8_t>(length);
}

MISUSE_CASE(make_with_extra_overflows, kThrows, kSizeOverflow, "the size overflows once headers and page rounding are added") {
  Heap heap(quiet_config());
  ThreadScope attached(heap);
  heap.make_with_extra<Node>(std::numeric_limits<std::size_t>::max() - 16);
}

MISUSE_CASE(make_beyond_heap_limit, kThrows, kOutOfMemory, "(HANDOFF_MAX_HEAP_BYTES) is reached") {
  HeapConfig config = quiet_config();
  config.max_heap_bytes = 4 << 20;
  config.allocator.max_heap_bytes = 4 << 20;
  Heap heap(config);
  ThreadScope attached(heap);
  heap.make_array<std::uint64_t>(std::size_t{1} << 20);  // 8 MiB
}

MISUSE_CASE(try_make_beyond_heap_limit, kReturns, kNone, "try_make: nullptr at the limit; heap verified") {
  HeapConfig config = quiet_config();
  config.max_heap_bytes = 1 << 20;
  config.allocator.max_heap_bytes = 1 << 20;
  Heap heap(config);
  ThreadScope attached(heap);
  // Fill the heap with live large objects until the limit refuses one.
  constexpr std::size_t kSlots = 512;  // 512 x 8 KiB: twice the limit
  Root<handoff::Array<Member<Big>>> kept(heap, heap.make_array<Member<Big>>(kSlots));
  for (std::size_t i = 0; i < kSlots; ++i) {
    Big* big = heap.try_make<Big>();
    if (big == nullptr) {
      heap.verify();
      say("try_make: nullptr at the limit; heap verified");
      return;
    }
    (*kept)[i] = big;
  }
  say("try_make never returned nullptr below a 1 MiB limit");
}

MISUSE_CASE(constructor_throws, kReturns, kNone, "constructor exception propagated; heap verified") {
  Heap heap(quiet_config());
  ThreadScope attached(heap);
  try {
    heap.make<ThrowingConstructor>(heap);
  } catch (const std::runtime_error& e) {
    if (std::string_view(e.what()) == "constructor failed") {
      heap.collect();
      heap.verify();
      heap.make<Node>();
      say("constructor exception propagated; heap verified");
    }
  }
}

// ---- destructors that touch the heap ------------------------------------------------

template <class T>
void drop_and_sweep() {
  Heap heap(quiet_config());
  g_heap = &heap;
  ThreadScope attached(heap);
  hidden_new<T>(heap);
  scrub_stack();
  heap.collect();  // synchronous sweep runs the destructor
  say("the destructor ran without being stopped");
}

MISUSE_CASE(destructor_allocates, kAborts, kNone, "a destructor touched the heap (allocation)") {
#if defined(NDEBUG)
  // The allocation fast path checks this only in debug builds (it would
  // cost a branch per allocation); release builds may not catch it.
  skip("destructor_allocates is checked in debug builds only (NDEBUG is set)");
#else
  drop_and_sweep<AllocatesInDestructor>();
#endif
}

MISUSE_CASE(destructor_creates_root, kAborts, kNone, "a destructor created a Root") {
  drop_and_sweep<RootsInDestructor>();
}

MISUSE_CASE(destructor_collects, kAborts, kNone, "a destructor started a collection") {
  drop_and_sweep<CollectsInDestructor>();
}

// ---- tunables ------------------------------------------------------------------------

MISUSE_CASE(bad_tunable_not_a_number, kThrows, kBadTunable, "HANDOFF_GROWTH_PERCENT='abc' is not a non-negative integer") {
  setenv("HANDOFF_GROWTH_PERCENT", "abc", 1);
  Heap heap;
}

MISUSE_CASE(bad_tunable_bad_suffix, kThrows, kBadTunable, "HANDOFF_MAX_HEAP_BYTES='12Q' is not a non-negative integer") {
  setenv("HANDOFF_MAX_HEAP_BYTES", "12Q", 1);
  Heap heap;
}

MISUSE_CASE(bad_tunable_overflow, kThrows, kBadTunable, "HANDOFF_INITIAL_HEAP_BYTES='99999999999G'") {
  setenv("HANDOFF_INITIAL_HEAP_BYTES", "99999999999G", 1);
  Heap heap;
}

MISUSE_CASE(bad_tunable_negative, kThrows, kBadTunable, "HANDOFF_SWEEPER_KEEP_EMPTY='-1'") {
  setenv("HANDOFF_SWEEPER_KEEP_EMPTY", "-1", 1);
  Heap heap;
}

// ---- the allocator on its own ----------------------------------------------------------

MISUSE_CASE(allocator_allocate_zero, kThrows, kZeroSize, "allocate(0): a cell must have at least one byte") {
  handoff::Allocator allocator;
  handoff::ThreadAllocator thread(allocator);
  thread.allocate(0);
}

MISUSE_CASE(allocator_allocate_huge, kThrows, kSizeOverflow, "the size overflows once headers and page rounding are added") {
  handoff::Allocator allocator;
  handoff::ThreadAllocator thread(allocator);
  thread.allocate(std::numeric_limits<std::size_t>::max());
}

MISUSE_CASE(allocator_try_allocate_zero, kReturns, kNone, "try_allocate(0): nullptr, last_error zero-size allocation") {
  handoff::Allocator allocator;
  handoff::ThreadAllocator thread(allocator);
  void* p = thread.try_allocate(0);
  say(std::string("try_allocate(0): ") + (p == nullptr ? "nullptr" : "a pointer") + ", last_error " +
      handoff::error_code_name(thread.last_error()));
}

MISUSE_CASE(allocator_destroyed_with_thread_attached, kAborts, kNone, "Allocator destroyed while 1 ThreadAllocator(s) are still attached") {
  auto allocator = std::make_unique<handoff::Allocator>();
  new handoff::ThreadAllocator(*allocator);  // never destroyed: still attached
  allocator.reset();
}

MISUSE_CASE(begin_lazy_sweep_twice, kThrows, kMisuse, "begin_lazy_sweep: the previous lazy sweep is still open") {
  handoff::Allocator allocator;
  const auto keep_all = handoff::SweepPolicy([](void*) { return true; });
  allocator.begin_lazy_sweep(keep_all);
  allocator.begin_lazy_sweep(keep_all);
}

MISUSE_CASE(cell_size_of_non_cell, kThrows, kNotAHeapPointer, "is not the start of an allocated cell of this heap") {
  handoff::Allocator allocator;
  int local = 0;
  allocator.cell_size(&local);
}

MISUSE_CASE(cell_size_of_interior_pointer, kThrows, kNotAHeapPointer, "is not the start of an allocated cell of this heap") {
  handoff::Allocator allocator;
  handoff::ThreadAllocator thread(allocator);
  char* cell = static_cast<char*>(thread.allocate(64));
  thread.flush();  // recorded: cell_size(cell) itself would succeed
  allocator.cell_size(cell + 8);
}

// ---- the embedder API: checked handles, external memory, ephemerons -----------------

[[gnu::noinline]] handoff::CheckedHandle<Node> checked_garbage(Heap& heap) {
  return handoff::CheckedHandle<Node>(heap, heap.make<Node>());
}

MISUSE_CASE(checked_handle_after_collection, kThrows, kStaleHandle, "is stale: its object was found unreachable") {
  Heap heap(quiet_config());
  ThreadScope attached(heap);
  const auto handle = checked_garbage(heap);
  scrub_stack();
  heap.collect();
  handle.get();
}

MISUSE_CASE(checked_handle_after_heap_destroyed, kThrows, kHeapDestroyed, "belongs to a heap that was destroyed") {
  handoff::CheckedHandle<Node> handle;
  {
    Heap heap(quiet_config());
    ThreadScope attached(heap);
    handle = handoff::CheckedHandle<Node>(heap, heap.make<Node>(), handoff::HandleStrength::kStrong);
  }
  handle.get();
}

MISUSE_CASE(checked_handle_released_twice, kThrows, kStaleHandle, "is stale: it was released") {
  Heap heap(quiet_config());
  ThreadScope attached(heap);
  Root<Node> node(heap, heap.make<Node>());
  const handoff::CheckedHandle<Node> handle(heap, node.get(), handoff::HandleStrength::kStrong);
  handle.release();
  handle.release();
}

MISUSE_CASE(checked_handle_get_unattached, kThrows, kMisuse, "CheckedHandle::get from a thread that is not attached") {
  Heap heap(quiet_config());
  handoff::CheckedHandle<Node> handle;
  Root<Node> node;
  {
    ThreadScope attached(heap);
    node = Root<Node>(heap, heap.make<Node>());
    handle = handoff::CheckedHandle<Node>(heap, node.get());
  }
  handle.get();
}

struct ExternalOwner : handoff::Leaf {
  handoff::ExternalMemory store;
};

MISUSE_CASE(external_memory_detach_twice, kThrows, kMisuse, "ExternalMemory::detach: nothing is attached (detached twice") {
  Heap heap(quiet_config());
  ThreadScope attached(heap);
  Root<ExternalOwner> owner(heap, heap.make<ExternalOwner>());
  owner->store.attach(heap, std::make_unique<std::uint64_t[]>(16), 16 * sizeof(std::uint64_t));
  owner->store.detach();
  owner->store.detach();
}

MISUSE_CASE(external_memory_attach_twice, kThrows, kMisuse, "this field already holds 8 bytes of external memory") {
  Heap heap(quiet_config());
  ThreadScope attached(heap);
  Root<ExternalOwner> owner(heap, heap.make<ExternalOwner>());
  owner->store.attach(heap, std::make_unique<std::uint64_t>(1), 8);
  owner->store.attach(heap, std::make_unique<std::uint64_t>(2), 8);
}

using NodeMap = handoff::EphemeronMap<Node, Node>;

MISUSE_CASE(ephemeron_key_not_a_heap_object, kThrows, kNotAHeapPointer, "EphemeronMap key of") {
  Heap heap(quiet_config());
  ThreadScope attached(heap);
  NodeMap* map = heap.make<NodeMap>(heap);
  Node local;
  map->set(&local, heap.make<Node>());
}

MISUSE_CASE(ephemeron_set_unattached, kThrows, kMisuse, "EphemeronMap::set from a thread that is not attached") {
  Heap heap(quiet_config());
  Root<NodeMap> map;
  Root<Node> node;
  {
    ThreadScope attached(heap);
    map = Root<NodeMap>(heap, heap.make<NodeMap>(heap));
    node = Root<Node>(heap, heap.make<Node>());
  }
  map->set(node.get(), node.get());
}

}  // namespace
