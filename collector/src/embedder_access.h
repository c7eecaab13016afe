// What the embedder API (ephemeron.h, external_memory.h, checked_handle.h)
// needs from the heap's private side, in one place: Heap befriends this
// struct only.
#pragma once

#include "heap_internals.h"

#include <string>

namespace handoff::detail {

struct EmbedderAccess {
  static HeapInternals& internals(Heap& heap) noexcept { return *heap.internals_; }
  // Error(kMisuse) unless the calling thread is attached to `heap` (and
  // not inside a destructor run by a sweep).
  static MutatorThread& check_attached(Heap& heap, const char* what) { return heap.current_or_throw(what); }
  // Aborts, naming `action` ("created a Root"), when called from a
  // destructor run by a sweep.
  static void check_outside_destructor(const std::string& action);
  // Error(kNotAHeapPointer) unless `object` is the start of a live object
  // of `heap`; the message names `what` and says why (inside an object,
  // or not a live object of this heap). The check a Root makes.
  static void check_live_object(Heap& heap, const void* object, const char* what);
  // Both checks, for the embedder API ("a destructor used <what>").
  static void check_heap_object(Heap& heap, const void* object, const char* what);
};

}  // namespace handoff::detail
