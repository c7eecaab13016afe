// Handles for references held outside the heap and outside stacks.
//
//   Root<T>  a precise strong root: the object stays alive while the Root
//            holds it. For globals, containers on the C++ heap, other
//            threads' data. (Locals need no Root: stacks are scanned.)
//   Weak<T>  does not keep the object alive; reads nullptr once a
//            collection found the object unreachable. Weak references are
//            cleared after marking, before any sweep can reuse the cell.
//
// Both register with their heap's handle table (a mutex; creating a handle is
// not a fast-path operation). Constructing one from a pointer that is not
// the start of a live object of this heap throws Error(kNotAHeapPointer).
// The check is exact except for one case: an object in the current block of
// *another* thread, whose allocations are private to that thread until it
// gives the block up. There only the object's type header is checked, so a
// cell that was freed before that thread claimed the block can pass (AddressSanitizer
// builds refuse it: free cells are poisoned).
// When the heap is destroyed first, each handle is orphaned: get() then
// throws Error(kMisuse) instead of returning a dangling pointer.
//
// Thread safety: a handle object is used by one thread at a time, like any
// C++ value; different handles may be created and destroyed concurrently.
// Weak::get() must be called from a thread attached to the heap (a
// collection cannot clear it halfway through the read); from any other
// thread it throws Error(kMisuse).
//
// A Weak holds its target in disguise (the address complemented), so a Weak
// on the stack, or in an object scanned conservatively, does not keep its
// target alive through the conservative scan.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace handoff {

class Heap;

namespace detail {

class HandleBase {
 public:
  enum class Kind : unsigned char { kRoot, kWeak };

 protected:
  HandleBase(Kind kind) noexcept : kind_(kind) {}
  // Registers (heap != nullptr) after validating `object`; throws on a bad
  // pointer and leaves the handle empty.
  void attach(Heap* heap, const void* object);
  void detach() noexcept;
  void reset_object(const void* object);
  // Throws Error(kMisuse) when the handle holds nothing to release.
  void release_checked();
  const void* object_checked(const char* what) const;
  ~HandleBase() { detach(); }

  Heap* heap() const noexcept { return heap_; }
  bool registered() const noexcept { return registered_; }

 private:
  static void check_object(Heap& heap, Kind kind, const void* object);
  // A Weak's stored form (see above); its own inverse.
  static const void* disguise(Kind kind, const void* object) noexcept {
    if (kind == Kind::kRoot || object == nullptr) return object;
    return reinterpret_cast<const void*>(~reinterpret_cast<std::uintptr_t>(object));
  }
  friend class handoff::Heap;
  friend class HandleTable;
  Kind kind_;
  bool registered_ = false;
  bool orphaned_ = false;  // the heap was destroyed first
  Heap* heap_ = nullptr;
  std::atomic<const void*> object_{nullptr};
  HandleBase* prev_ = nullptr;
  HandleBase* next_ = nullptr;
};

}  // namespace detail

template <class T>
class Root : private detail::HandleBase {
 public:
  Root() noexcept : HandleBase(Kind::kRoot) {}
  Root(Heap& heap, T* object) : HandleBase(Kind::kRoot) { attach(&heap, object); }
  // Copying a root whose heap was destroyed throws Error(kMisuse), like get().
  Root(const Root& other) : HandleBase(Kind::kRoot) {
    const void* object = other.object_checked("Root copy");
    if (other.registered()) attach(other.heap(), object);
  }
  Root& operator=(const Root& other) {
    if (this != &other) {
      const void* object = other.object_checked("Root copy");
      detach();
      if (other.registered()) attach(other.heap(), object);
    }
    return *this;
  }
  ~Root() = default;

  // Points the root at another object of the same heap (or nullptr).
  void set(T* object) { reset_object(object); }
  // Drops the root; a second release() throws Error(kMisuse).
  void release() { release_checked(); }

  T* get() const { return static_cast<T*>(const_cast<void*>(object_checked("Root::get"))); }
  T* operator->() const { return get(); }
  T& operator*() const { return *get(); }
  bool empty() const noexcept { return !registered(); }
};

template <class T>
class Weak : private detail::HandleBase {
 public:
  Weak() noexcept : HandleBase(Kind::kWeak) {}
  Weak(Heap& heap, T* object) : HandleBase(Kind::kWeak) { attach(&heap, object); }
  Weak(const Weak&) = delete;
  Weak& operator=(const Weak&) = delete;
  ~Weak() = default;

  // The object, or nullptr once it was found unreachable.
  T* get() const { return static_cast<T*>(const_cast<void*>(object_checked("Weak::get"))); }
  bool cleared() const { return get() == nullptr; }
};

}  // namespace handoff
