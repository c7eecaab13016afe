// External memory owned by a heap object: a backing store behind a small
// wrapper (V8's ArrayBuffer and its BackingStore).
//
//   struct Buffer : handoff::Leaf {
//     handoff::ExternalMemory store;
//   };
//   Buffer* b = heap.make<Buffer>();
//   b->store.attach(heap, std::make_unique<Bytes>(n), n);   // or unique_ptr<T[]>
//   ...
//   b->store.detach();   // releases now (ArrayBuffer::Detach); optional
//
// Two bugs this closes:
//   - Destruction by the wrong type. The deleter is recorded at attach
//     time from the unique_ptr's type, which is the type the memory was
//     allocated as; releasing never goes through whatever static type the
//     release site happens to see (V8's BackingStore deleted a 48-byte
//     object through a 1-byte pointer: ASan's new-delete-type-mismatch).
//   - A trigger blind to external bytes. A 100 MB store behind a 32-byte
//     wrapper would never start a collection. Attached bytes count toward
//     the trigger as if allocated (an attach can start a collection), they
//     make the policy choose a full collection once those attached since the
//     last full one reach its budget (an eden collection cannot free old
//     wrappers), and HeapStats reports them (external_bytes).
//
// Release happens exactly once: when the owner is swept (this field's
// destructor, on whichever thread sweeps; the deleter therefore must not
// touch the heap, like any destructor), when detach() is called, or when
// the heap is destroyed. detach() on a field holding nothing (detached
// twice, or never attached) throws Error(kMisuse); so does attaching to a
// field that already holds memory. attach() needs a thread attached to the
// heap. The field must be a member of a heap object (a copy would release
// twice: it is not copyable).
#pragma once

#include <cstddef>
#include <memory>
#include <type_traits>

namespace handoff {

class Heap;

class ExternalMemory {
 public:
  ExternalMemory() noexcept = default;
  ExternalMemory(const ExternalMemory&) = delete;
  ExternalMemory& operator=(const ExternalMemory&) = delete;
  ~ExternalMemory() {
    if (data_ != nullptr) release();
  }

  // Takes `data` (allocated as T, or as T[] for an array) and counts
  // `bytes`. On an error `data` still owns the memory.
  template <class T>
  void attach(Heap& heap, std::unique_ptr<T>&& data, std::size_t bytes) {
    static_assert(!std::is_void_v<T>, "attach the memory with the type it was allocated as");
    attach_untyped(heap, data.get(), bytes, &delete_as<T>);
    data.release();
  }
  // Releases the memory now; Error(kMisuse) if nothing is attached.
  void detach();

  void* data() const noexcept { return data_; }
  template <class T>
  T* as() const noexcept {
    return static_cast<T*>(data_);
  }
  std::size_t size() const noexcept { return bytes_; }
  bool attached() const noexcept { return data_ != nullptr; }

 private:
  using Deleter = void (*)(void*);
  template <class T>
  static void delete_as(void* data) {
    if constexpr (std::is_array_v<T>) {
      delete[] static_cast<std::remove_extent_t<T>*>(data);
    } else {
      delete static_cast<T*>(data);
    }
  }
  void attach_untyped(Heap& heap, void* data, std::size_t bytes, Deleter deleter);
  void release() noexcept;

  void* data_ = nullptr;
  std::size_t bytes_ = 0;
  Deleter deleter_ = nullptr;
  Heap* heap_ = nullptr;
};

}  // namespace handoff
