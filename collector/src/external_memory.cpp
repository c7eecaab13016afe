// External memory attached to heap objects (external_memory.h): the
// accounting and the trigger.
//
// Call tree:
//   ExternalMemory::attach_untyped   mutator, attached: count the bytes
//     -> HeapInternals::collect      when they cross the trigger (as an
//                                    allocation slow path would)
//   ExternalMemory::detach           mutator: release now
//   ~ExternalMemory -> release       the owner's destructor, run by a sweep
//                                    (any sweeping thread) or by ~Heap
//   HeapInternals::choose_eden       reads external.since_full (collection.cpp)
#include "embedder_access.h"

#include <handoff/external_memory.h>

#include <string>

namespace handoff {

void ExternalMemory::attach_untyped(Heap& heap, void* data, std::size_t bytes, Deleter deleter) {
  detail::MutatorThread& self = detail::EmbedderAccess::check_attached(heap, "ExternalMemory::attach");
  if (data == nullptr) throw Error(ErrorCode::kMisuse, "ExternalMemory::attach: the memory is nullptr");
  if (data_ != nullptr) {
    throw Error(ErrorCode::kMisuse,
                "ExternalMemory::attach: this field already holds " + std::to_string(bytes_) +
                    " bytes of external memory; detach() it first");
  }
  data_ = data;
  bytes_ = bytes;
  deleter_ = deleter;
  heap_ = &heap;
  auto& in = detail::EmbedderAccess::internals(heap);
  in.external.bytes.fetch_add(bytes, std::memory_order_relaxed);
  in.external.attached.fetch_add(1, std::memory_order_relaxed);
  in.external.since_full.fetch_add(bytes, std::memory_order_relaxed);
  in.bytes_since_collection.fetch_add(bytes, std::memory_order_relaxed);
  // The owner is on the caller's stack (it called a member function of a
  // field of it), so it survives a collection started here.
  if (self.park_depth == 0 && self.defer_depth == 0 && in.should_collect()) {
    in.collect(&self, detail::CollectionKind::kTriggered);
  }
}

void ExternalMemory::detach() {
  if (data_ == nullptr) {
    throw Error(ErrorCode::kMisuse,
                "ExternalMemory::detach: nothing is attached (detached twice, or never attached)");
  }
  release();
}

void ExternalMemory::release() noexcept {
  void* data = data_;
  data_ = nullptr;
  deleter_(data);
  auto& in = detail::EmbedderAccess::internals(*heap_);
  in.external.bytes.fetch_sub(bytes_, std::memory_order_relaxed);
  in.external.released.fetch_add(1, std::memory_order_relaxed);
  bytes_ = 0;
}

}  // namespace handoff
