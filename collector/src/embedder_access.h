// What the embedder API (ephemeron.h, external_memory.h, checked_handle.h)
// needs from the heap's private side, in one place: Heap befriends this
// struct only.
#pragma once

#include "heap_internals.h"

namespace handoff::detail {

struct EmbedderAccess {
  static HeapInternals& internals(Heap& heap) noexcept { return *heap.internals_; }
  // Error(kMisuse) unless the calling thread is attached to `heap` (and
  // not inside a destructor run by a sweep).
  static MutatorThread& check_attached(Heap& heap, const char* what) { return heap.current_or_throw(what); }
  // Error(kNotAHeapPointer) unless `object` is the start of a live object
  // of `heap` (the check a Root makes).
  static void check_heap_object(Heap& heap, const void* object, const char* what);
};

}  // namespace handoff::detail
