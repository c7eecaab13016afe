// The marker's target check: every object the marker is about to mark is
// first shown to be a cell of this heap, in every build.
//
// Why in release builds too: marking writes. A block cell's mark is a bit
// in its block's header, a large object's mark is a word in front of it, so
// a reference that is not a cell of this heap (a Member set to another
// heap's object, to a malloc'd buffer or a stack object, to the inside of an
// object, or to a cell already freed) would make the marker write into
// memory that is not its own, silently. Such a reference can only come from
// user code: a Member field, Visitor::trace_raw in a trace() or a root
// scanner, MarkPhase::mark. (Conservative words are looked up before they
// are visited, and Root/Weak handles check their target when set.)
//
// The rule: `cell` is marked only if it is the start of an allocated cell in
// a block this heap's pool has handed out (the block's live bit, exact while
// the world is stopped: marker.h), or the start of a large object in this
// heap's large-object table (the marker's sorted snapshot of it). Anything
// else aborts, naming the type of the object whose trace() reported it and
// what the address is (the inside of one of our objects, a free cell of our
// blocks, or not our memory at all). An abort rather than an exception: the
// collection cannot tell a good reference from a stale one once one is
// known to be bad, and the heap it would resume may already hold a
// dangling reference.
//
// Cost: the chunks of recently checked block cells are cached (64
// entries, indexed by the chunk number's low bits: chunks are kChunkSize-
// aligned, so up to 256 MiB of neighbouring chunks never evict each other;
// with one entry, the chunk lookup was 8.6% of the marker's samples on
// bench_mark_pause's 25 chunks, with 8 still 5.5%, with 64 none), so a
// block cell costs a compare, a load of the block's in-use byte and a test
// of the live bit next to the mark bit the marker writes anyway; a large
// object costs a binary search of the snapshot (the mark would otherwise
// need none). bench_mark_pause measures
// it (README, "Misuse"). "Next to" is the block layout's doing: the live
// and mark bitmaps are interleaved so that live word w and mark word w
// share a cache line (atom_bitmap.h). With the bitmaps one after the other
// the live bit was a second miss per edge into a cold block header, which
// doubled the mark time of the steady workload.
//
// Kept to this one function (and the report below) so that the marker's
// workers call it the same way wherever they mark.
#include "mark_target.h"

#include <cinttypes>
#include <cstdio>
#include <string>

namespace handoff::detail {

// Out of line: the first cell of another chunk, or no chunk (a large
// object, or foreign).
MarkedBlock* Marker::checked_target_slow(const void* cell) {
  const Chunk* chunk = heap_.allocator.pool().chunk_of(cell);
  if (chunk == nullptr) {
    if (find_large(reinterpret_cast<std::uintptr_t>(cell)) == cell) return nullptr;
    report_foreign_target(cell);
  }
  const auto base = reinterpret_cast<std::uintptr_t>(chunk->base);
  cached_chunk_for(base) = {base, chunk};
  return checked_target(cell);
}

[[noreturn]] void Marker::report_foreign_target(const void* cell) const {
  const void* object = object_of(const_cast<void*>(cell));
  std::string from = "a root scanner, post-mark hook or finalizer queue";
  if (tracing_ != nullptr) {
    const std::uintptr_t header = header_of(tracing_).load(std::memory_order_relaxed) & ~kInConstruction;
    const auto* type = reinterpret_cast<const TypeInfo*>(header);
    std::string name = type != nullptr && type->magic == TypeInfo::kMagic ? type->name : "unknown type";
    if (const auto with = name.find("[with T = "); with != std::string::npos) {
      name = name.substr(with + 10, name.size() - with - 11);  // TypeInfoFor<T>::name(): T's name only
    }
    char at[32];
    std::snprintf(at, sizeof at, "%p", tracing_);
    from = std::string("the trace() of the object at ") + at + " (type " + name + ")";
  }
  const void* containing = heap_.allocator.find_cell(object);
  char address[32];
  std::snprintf(address, sizeof address, "%p", object);
  std::string why;
  if (containing != nullptr) {
    char start[32];
    std::snprintf(start, sizeof start, "%p", object_of(const_cast<void*>(containing)));
    why = std::string("it points inside the object at ") + start + ", not at its start (a Member must hold an object's start)";
  } else if (heap_.allocator.pool().is_handed_out(cell)) {
    why = "it points at a cell of this heap that is free (a dangling reference: the object was collected, or never "
          "constructed here)";
  } else {
    why = "it is not memory of this heap (an object of another Heap, a stack, static or malloc'd object, or garbage)";
  }
  fatal_misuse("the marker was given " + std::string(address) + " by " + from + ": " + why +
               "; the collection stops here rather than write a mark into memory that is not its own");
}

}  // namespace handoff::detail
