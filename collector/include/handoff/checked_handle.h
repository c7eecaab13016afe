// Checked handles: references held outside the heap (an embedder's tables,
// another thread, across an API boundary) that detect staleness instead of
// reading reused memory ("handles instead of pointers").
//
//   handoff::CheckedHandle<Node> h(heap, node);               // weak
//   handoff::CheckedHandle<Node> s(heap, node, handoff::HandleStrength::kStrong);
//   Node* n = h.get();   // the object, or Error(kStaleHandle) / Error(kHeapDestroyed)
//   s.release();         // every copy of s is stale from now on
//
// A handle is a plain value (16 bytes, copyable, no destructor): the heap's
// serial number, an index into the heap's slot table and the slot's
// generation when the handle was made. A slot's generation grows each time
// the slot is freed: when a collection finds a weak handle's object
// unreachable (with Weak references, before any sweep can reuse the cell),
// or when release() is called. A handle whose generation no longer matches
// is stale, whatever the slot holds now. A heap's serial is never reused,
// and the heap leaves a process-wide registry when it is destroyed, so a
// handle that outlives its heap is recognised too.
//
//   get()      Error(kHeapDestroyed) when the heap is gone; Error(kMisuse)
//              from a thread not attached to it (the result must be on a
//              scanned stack before the next collection); Error(kStaleHandle)
//              when the object was collected or the handle released.
//              A default-constructed handle gives nullptr.
//   release()  frees the slot; Error(kStaleHandle) / Error(kHeapDestroyed)
//              as get() (releasing twice is stale), from any thread.
//
// Strong handles are roots (like Root<T>); weak ones are not (like Weak<T>).
// The slot table takes a mutex per operation: this is not a fast-path
// reference, it is the one that crosses a boundary.
#pragma once

#include <cstdint>

namespace handoff {

class Heap;

enum class HandleStrength : std::uint8_t { kWeak, kStrong };

namespace detail {

struct CheckedHandleId {
  std::uint64_t heap = 0;  // the heap's serial; 0: the null handle
  std::uint32_t index = 0;
  std::uint32_t generation = 0;
};

CheckedHandleId make_checked_handle(Heap& heap, const void* object, HandleStrength strength);
const void* resolve_checked_handle(const CheckedHandleId& id, const char* what);
void release_checked_handle(const CheckedHandleId& id);

}  // namespace detail

template <class T>
class CheckedHandle {
 public:
  CheckedHandle() noexcept = default;
  // Error(kNotAHeapPointer) unless `object` is the start of a live object
  // of `heap`; nullptr gives the null handle.
  CheckedHandle(Heap& heap, T* object, HandleStrength strength = HandleStrength::kWeak)
      : id_(detail::make_checked_handle(heap, object, strength)) {}

  T* get() const { return static_cast<T*>(const_cast<void*>(detail::resolve_checked_handle(id_, "CheckedHandle::get"))); }
  T* operator->() const { return get(); }
  void release() const { detail::release_checked_handle(id_); }
  bool null() const noexcept { return id_.heap == 0; }
  std::uint32_t index() const noexcept { return id_.index; }
  std::uint32_t generation() const noexcept { return id_.generation; }

 private:
  detail::CheckedHandleId id_;
};

}  // namespace handoff
