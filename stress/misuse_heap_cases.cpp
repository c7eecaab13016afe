// Misuse suite, part two: misuse that once corrupted memory, hung or leaked
// instead of failing clearly (references the marker must refuse, user code
// that throws in the middle of a collection, requests no machine can back,
// scopes closed on the wrong thread, tunables). Same harness and rules as
// misuse_suite.cpp; each case failed on the code before its fix.
#include "misuse_harness.h"

#include <handoff/allocator.h>
#include <handoff/heap.h>

#include <sys/sysinfo.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
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

struct Cell {
  Member<Cell> next;
  std::uint64_t value = 7;
  void trace(handoff::Visitor& v) const { v.trace(next); }
};

HeapConfig quiet_config() {
  HeapConfig config;  // defaults, not the environment
  config.sync_sweep = 1;
  return config;
}

// Stores `target` into `from->next` without the type system's help.
void point_at(Cell* from, const void* target) { from->next = static_cast<Cell*>(const_cast<void*>(target)); }

template <class T>
[[gnu::noinline]] std::uintptr_t hidden_new(Heap& heap) {
  return ~reinterpret_cast<std::uintptr_t>(heap.make<T>());
}
// Not instrumented, so that under AddressSanitizer the buffer is on the
// real stack (where the scan looks), not in a fake frame.
[[gnu::noinline]] __attribute__((no_sanitize("address"))) void scrub_stack() {
  volatile char buffer[16384];
  for (auto& b : buffer) b = 0;
}

// ---- references the marker refuses -------------------------------------------

// Before: collecting A wrote A's mark version into the word in front of B's
// object (its header), silently.
MISUSE_CASE(member_to_other_heaps_object, kAborts, kNone, "it is not memory of this heap") {
  Heap a(quiet_config());
  Heap b(quiet_config());
  ThreadScope in_a(a);
  ThreadScope in_b(b);
  Root<Cell> theirs(b, b.make<Cell>());
  Root<Cell> ours(a, a.make<Cell>());
  point_at(ours.get(), theirs.get());
  a.collect();
  say("collected; B's value is " + std::to_string(theirs->value));
}

MISUSE_CASE(member_to_malloc_buffer, kAborts, kNone, "::Cell): it is not memory of this heap") {
  Heap heap(quiet_config());
  ThreadScope attached(heap);
  auto buffer = std::make_unique<std::uint64_t[]>(8);
  Root<Cell> ours(heap, heap.make<Cell>());
  point_at(ours.get(), &buffer[2]);
  heap.collect();
  say("collected; the buffer's word before the target is " + std::to_string(buffer[1]));
}

// A traced type of its own, so that a report naming it is the wrong one.
struct Bystander {
  Member<Cell> next;
  void trace(handoff::Visitor& v) const { v.trace(next); }
};

// The marker marks a reference into another block a few visits after the
// trace() that reported it (the visit queue, collector/src/marker.cpp):
// the report must still name that trace(), not the Bystander traced since.
MISUSE_CASE(member_to_malloc_buffer_among_others, kAborts, kNone, "::Cell): it is not memory of this heap") {
  Heap heap(quiet_config());
  ThreadScope attached(heap);
  auto buffer = std::make_unique<std::uint64_t[]>(8);
  std::vector<std::unique_ptr<Root<Bystander>>> before, after;
  for (int i = 0; i < 4; ++i) before.push_back(std::make_unique<Root<Bystander>>(heap, heap.make<Bystander>()));
  Root<Cell> ours(heap, heap.make<Cell>());
  for (int i = 0; i < 4; ++i) after.push_back(std::make_unique<Root<Bystander>>(heap, heap.make<Bystander>()));
  point_at(ours.get(), &buffer[2]);
  heap.collect();
  say("collected; the buffer's word before the target is " + std::to_string(buffer[1]));
}

// Before: kept alive without the verifier; HANDOFF_VERIFY=1 then aborted
// with "a free cell is marked".
MISUSE_CASE(member_to_interior_pointer, kAborts, kNone, "it points inside the object at") {
  HeapConfig config = quiet_config();
  config.verify = 1;
  Heap heap(config);
  ThreadScope attached(heap);
  Root<Cell> target(heap, heap.make<Cell>());
  Root<Cell> ours(heap, heap.make<Cell>());
  point_at(ours.get(), &target->value);
  heap.collect();
  say("collected with an interior Member");
}

MISUSE_CASE(member_to_freed_cell, kAborts, kNone, "a dangling reference") {
  Heap heap(quiet_config());
  ThreadScope attached(heap);
  Root<Cell> ours(heap, heap.make<Cell>());
  const std::uintptr_t hidden = hidden_new<Cell>(heap);
  scrub_stack();
  heap.collect();  // synchronous sweep: the cell is free now
  point_at(ours.get(), reinterpret_cast<Cell*>(~hidden));
  heap.collect();
  say("collected with a dangling Member");
}

// ---- user code that throws inside a collection -----------------------------------

std::atomic<int> g_trace_throws{0};  // > 0: so many traces of Thrower throw

struct Thrower {
  Member<Cell> child;
  void trace(handoff::Visitor& v) const {
    if (g_trace_throws.load() > 0) {
      g_trace_throws.fetch_sub(1);
      throw std::runtime_error("trace failed");
    }
    v.trace(child);
  }
};

// Collects with one throwing trace; true when collect() passed the exception on.
bool collect_with_throwing_trace(Heap& heap, handoff::CollectionScope scope) {
  g_trace_throws.store(1);
  try {
    heap.collect(scope);
  } catch (const std::runtime_error&) {
    return g_trace_throws.load() == 0;
  }
  return false;
}

// Before: the world stayed stopped; verify() waited for it forever.
MISUSE_CASE(trace_throws_then_verify, kReturns, kNone, "trace exception passed on, verified, collected") {
  Heap heap(quiet_config());
  ThreadScope attached(heap);
  Root<Thrower> root(heap, heap.make<Thrower>());
  root->child = heap.make<Cell>();
  if (!collect_with_throwing_trace(heap, handoff::CollectionScope::kFull)) say("collect() did not rethrow");
  heap.verify();
  heap.collect();
  if (root->child->value == 7) say("trace exception passed on, verified, collected");
}

// Before: the next allocation's safepoint waited forever.
MISUSE_CASE(trace_throws_then_make, kReturns, kNone, "trace exception passed on, 100000 objects made") {
  HeapConfig config = quiet_config();
  config.sync_sweep = 0;                  // lazy and concurrent sweeping after the abandoned collection
  config.initial_heap_bytes = 256 << 10;  // several triggered collections follow
  Heap heap(config);
  ThreadScope attached(heap);
  Root<Thrower> root(heap, heap.make<Thrower>());
  if (!collect_with_throwing_trace(heap, handoff::CollectionScope::kFull)) say("collect() did not rethrow");
  int made = 0;
  for (; made < 100000; ++made) heap.make<Cell>();
  heap.verify();
  say("trace exception passed on, " + std::to_string(made) + " objects made");
}

[[gnu::noinline]] void give_child(Heap& heap, Thrower* parent) { parent->child = heap.make<Cell>(); }

// Sticky marks: the abandoned eden collection marked the Thrower but not its
// child; an eden collection after it would keep the mark and never trace
// the child, so the sweep would free a reachable object.
MISUSE_CASE(trace_throws_next_collection_is_full, kReturns, kNone, "child kept, next collection was full") {
  Heap heap(quiet_config());
  ThreadScope attached(heap);
  heap.collect();  // a mark version exists: eden collections can run
  Root<Thrower> root(heap, heap.make<Thrower>());
  give_child(heap, root.get());
  scrub_stack();  // only the Thrower reaches the child
  if (!collect_with_throwing_trace(heap, handoff::CollectionScope::kEden)) say("collect() did not rethrow");
  const std::uint64_t full_before = heap.stats().full_collections;
  heap.collect(handoff::CollectionScope::kEden);
  const bool kept = heap.is_heap_object(root->child.get()) && root->child->value == 7;
  const bool full = heap.stats().full_collections == full_before + 1;
  heap.verify();
  say(std::string(kept ? "child kept" : "child freed") + ", next collection was " + (full ? "full" : "eden"));
}

std::atomic<int> g_finalized{0};

struct ThrowingFinalizer : handoff::Leaf {
  void finalize() {
    g_finalized.fetch_add(1);
    throw std::runtime_error("finalizer failed");
  }
};

[[gnu::noinline]] void drop_finalizables(Heap& heap, int n) {
  for (int i = 0; i < n; ++i) heap.make<ThrowingFinalizer>();
}

// Before: one finalizer ran per collection and finalizers_run undercounted.
MISUSE_CASE(finalizers_throw, kReturns, kNone, "10 of 10 finalizers ran, counted 10, the first exception passed on") {
  Heap heap(quiet_config());
  ThreadScope attached(heap);
  drop_finalizables(heap, 10);
  scrub_stack();
  bool rethrown = false;
  try {
    heap.collect();
  } catch (const std::runtime_error&) {
    rethrown = true;
  }
  heap.collect();  // none left to run: must not throw
  say(std::to_string(g_finalized.load()) + " of 10 finalizers ran, counted " +
      std::to_string(heap.stats().finalizers_run) + (rethrown ? ", the first exception passed on" : ", nothing thrown"));
}

// Before: the block being swept stayed SWEEPING: later sweeps visited 3 of
// 4 blocks and its cells stayed allocated forever.
MISUSE_CASE(sweep_predicate_throws, kReturns, kNone, "after the throw: 4 of 4 blocks swept, every cell freed") {
  handoff::Allocator allocator;
  handoff::ThreadAllocator thread(allocator);
  const std::size_t per_block = handoff::kBlockSize / 64;  // more than fit in a block of 64-byte cells
  std::size_t cells = 0;
  for (; cells < 3 * per_block + per_block / 2; ++cells) thread.allocate(64);
  thread.flush();
  std::size_t calls = 0;
  try {
    allocator.sweep([&](void*) -> bool {
      if (++calls == per_block / 2) throw std::runtime_error("predicate failed");
      return true;
    });
  } catch (const std::runtime_error&) {
  }
  const handoff::SweepTotals totals = allocator.sweep([](void*) { return false; });
  say("after the throw: " + std::to_string(totals.blocks_swept) + " of 4 blocks swept, " +
      (totals.freed_cells == cells ? "every cell freed" : std::to_string(totals.freed_cells) + " of " +
                                                             std::to_string(cells) + " cells freed"));
}

// ---- requests larger than the machine -----------------------------------------------

std::size_t twice_the_machine() {
  struct sysinfo info {};
  sysinfo(&info);
  return 2 * (static_cast<std::size_t>(info.totalram) + info.totalswap) * info.mem_unit;
}

// Before: the reservation succeeded (overcommit); writing it would end in
// the OOM killer.
MISUSE_CASE(make_array_larger_than_machine, kThrows, kOutOfMemory, "larger than this machine can back") {
  Heap heap(quiet_config());
  ThreadScope attached(heap);
  heap.make_array<char>(twice_the_machine());
}

MISUSE_CASE(allocator_try_allocate_larger_than_machine, kReturns, kNone, "nullptr, last_error out of memory") {
  handoff::Allocator allocator;
  handoff::ThreadAllocator thread(allocator);
  void* p = thread.try_allocate(twice_the_machine());
  say(std::string(p == nullptr ? "nullptr" : "a pointer") + ", last_error " +
      handoff::error_code_name(thread.last_error()));
}

// Before: "failed after a full collection" although none ran.
MISUSE_CASE(out_of_memory_inside_defer_gc, kThrows, kOutOfMemory, "so no collection ran") {
  HeapConfig config = quiet_config();
  config.max_heap_bytes = 4 << 20;
  config.allocator.max_heap_bytes = 4 << 20;
  Heap heap(config);
  ThreadScope attached(heap);
  handoff::DeferGC defer(heap);
  heap.make_array<std::uint64_t>(std::size_t{1} << 20);  // 8 MiB
}

// ---- scopes and handles on the wrong thread ---------------------------------------------

// Before: no error; the opening thread counted the scope open forever.
MISUSE_CASE(defer_gc_closed_on_other_thread, kAborts, kNone, "DeferGC destroyed on a different thread") {
  Heap heap(quiet_config());
  ThreadScope attached(heap);
  auto* defer = new handoff::DeferGC(heap);
  std::thread([&] { delete defer; }).join();
  say("closed on another thread");
}

MISUSE_CASE(weak_get_from_unattached_thread, kThrows, kMisuse, "Weak::get from a thread that is not attached") {
  Heap heap(quiet_config());
  ThreadScope attached(heap);
  Root<Cell> kept(heap, heap.make<Cell>());
  Weak<Cell> weak(heap, kept.get());
  std::exception_ptr failed;
  std::thread([&] {
    try {
      weak.get();
    } catch (...) {
      failed = std::current_exception();
    }
  }).join();
  if (failed != nullptr) std::rethrow_exception(failed);
  say("Weak::get succeeded on an unattached thread");
}

// The new cell's address stays in this (then dead, scrubbed) frame and in the Weak.
[[gnu::noinline]] void weak_to_new_cell(Heap& heap, std::optional<Weak<Cell>>& weak) {
  weak.emplace(heap, heap.make<Cell>());
}

// Not misuse, but once surprising: a Weak on the stack kept its target
// alive through the conservative stack scan.
MISUSE_CASE(weak_on_stack_does_not_keep_target, kReturns, kNone, "the stack's Weak was cleared") {
  Heap heap(quiet_config());
  ThreadScope attached(heap);
  std::optional<Weak<Cell>> weak;  // on this frame's stack
  weak_to_new_cell(heap, weak);
  scrub_stack();
  heap.collect();
  say(weak->get() == nullptr ? "the stack's Weak was cleared" : "the stack's Weak kept its target");
}

// make<Array<E>>(n) allocated room for no element, then constructed n.
template <class H>
constexpr bool makes_array_directly = requires(H& heap) { heap.template make<handoff::Array<int>>(std::size_t{4}); };
template <class H>
constexpr bool try_makes_array_directly =
    requires(H& heap) { heap.template try_make<handoff::Array<int>>(std::size_t{4}); };
static_assert(!makes_array_directly<Heap> && !try_makes_array_directly<Heap>,
              "make<Array<E>> must not compile: make_array<E>(n) is the way");

// ---- tunables --------------------------------------------------------------------------------

MISUSE_CASE(bad_tunable_lowercase_suffix, kThrows, kBadTunable, "HANDOFF_MAX_HEAP_BYTES='1k' is not") {
  setenv("HANDOFF_MAX_HEAP_BYTES", "1k", 1);
  Heap heap;
}

MISUSE_CASE(bad_tunable_switch_not_0_or_1, kThrows, kBadTunable, "HANDOFF_VERIFY='2': an on/off switch takes exactly 0 or 1") {
  setenv("HANDOFF_VERIFY", "2", 1);
  Heap heap;
}

MISUSE_CASE(bad_tunable_sweeper_switch, kThrows, kBadTunable, "HANDOFF_SWEEPER='1K': an on/off switch") {
  setenv("HANDOFF_SWEEPER", "1K", 1);
  Heap heap;
}

}  // namespace
