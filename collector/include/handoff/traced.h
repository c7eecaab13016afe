// Traced types: what the collector needs to know about an object.
//
// Every object the heap allocates sits in a cell behind one header word:
//
//   cell:  | header (8 B): const TypeInfo* | low bit "in construction" | T ... |
//
// The header is written at allocation, before T's constructor runs, and
// records T's TypeInfo: how to trace it, how to destroy it, how to finalize
// it. Destruction therefore dispatches on the type recorded at allocation,
// never on a static type at the release site. While the constructor runs the
// low bit is set and the marker scans the object's words conservatively
// (a constructor may allocate, and so collect, before its Member fields are
// all initialised); the bit is cleared when the constructor returns.
//
// A traced type has `void trace(handoff::Visitor&) const` that visits each
// Member field. Types with no heap references derive from handoff::Leaf.
// Objects are 8-byte aligned (the header is 8 bytes, cells 16-aligned);
// over-aligned types are rejected at compile time.
//
//   struct Node {
//     handoff::Member<Node> left, right;
//     int value = 0;
//     void trace(handoff::Visitor& v) const { v.trace(left); v.trace(right); }
//   };
//
// Optional: `void finalize()` is called once, on a mutator thread, after the
// collection that found the object unreachable; it may allocate and touch
// other objects (they are kept alive for it). The destructor runs later, when
// the cell is swept, and must not touch the heap (debug builds catch it).
#pragma once

#include <handoff/write_barrier.h>

#include <atomic>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace handoff {

class Visitor;
namespace detail {
class EphemeronTable;
}

struct TypeInfo {
  static constexpr std::uint32_t kMagic = 0x48444f46;  // "HDOF"
  std::uint32_t magic = kMagic;
  const char* name = "";
  void (*trace)(const void* object, Visitor& visitor) = nullptr;  // nullptr: a leaf
  void (*destroy)(void* object) = nullptr;   // nullptr: trivially destructible
  void (*finalize)(void* object) = nullptr;  // nullptr: no finalizer
};

template <class T>
concept Traced = requires(const T& object, Visitor& visitor) {
  { object.trace(visitor) } -> std::same_as<void>;
};

template <class T>
concept Finalizable = requires(T& object) {
  { object.finalize() } -> std::same_as<void>;
};

// Base for types that hold no heap references.
struct Leaf {
  void trace(Visitor&) const {}
};

namespace detail {

inline constexpr std::size_t kCellHeaderSize = 8;
inline constexpr std::uintptr_t kInConstruction = 1;

// The header word in front of every object.
inline std::atomic<std::uintptr_t>& header_of(const void* object) noexcept {
  return *reinterpret_cast<std::atomic<std::uintptr_t>*>(
      const_cast<char*>(static_cast<const char*>(object)) - kCellHeaderSize);
}
inline void* cell_of(const void* object) noexcept {
  return const_cast<char*>(static_cast<const char*>(object)) - kCellHeaderSize;
}
inline void* object_of(void* cell) noexcept { return static_cast<char*>(cell) + kCellHeaderSize; }
inline const TypeInfo* type_of(const void* object) noexcept {
  return reinterpret_cast<const TypeInfo*>(header_of(object).load(std::memory_order_relaxed) &
                                           ~kInConstruction);
}

template <class T>
struct TypeInfoFor {
  static void trace(const void* object, Visitor& visitor) { static_cast<const T*>(object)->trace(visitor); }
  static void destroy(void* object) { static_cast<T*>(object)->~T(); }
  static void finalize(void* object) {
    if constexpr (Finalizable<T>) static_cast<T*>(object)->finalize();
  }
  // Inside a function, so that it names T ("... [with T = Node]").
  static constexpr const char* name() { return __PRETTY_FUNCTION__; }
  static constexpr TypeInfo info{TypeInfo::kMagic, name(), &trace,
                                 std::is_trivially_destructible_v<T> ? nullptr : &destroy,
                                 Finalizable<T> ? &finalize : nullptr};
};

}  // namespace detail

template <class T>
const TypeInfo* type_info_of() noexcept {
  static_assert(Traced<T>, "heap types need `void trace(handoff::Visitor&) const` (or derive from handoff::Leaf)");
  static_assert(alignof(T) <= 8, "heap objects are 8-byte aligned; over-aligned types are not supported");
  return &detail::TypeInfoFor<T>::info;
}

// A reference from one heap object to another. Assignment runs the
// generational write barrier (write_barrier.h) on the Member's own address:
// a plain byte store in the common case, nothing at all when the Member is
// not inside a heap block (on the stack, in a malloc'd struct). Storing
// nullptr needs no barrier. Construction needs none either: a collection
// treats an object under construction specially (write_barrier.h).
template <class T>
class Member {
 public:
  Member() noexcept = default;
  Member(std::nullptr_t) noexcept {}  // NOLINT(google-explicit-constructor)
  Member(T* object) noexcept : object_(object) {}  // NOLINT(google-explicit-constructor)
  Member(const Member& other) noexcept = default;
  Member& operator=(T* object) noexcept {
    object_ = object;
    if (object != nullptr) write_barrier(this);
    return *this;
  }
  Member& operator=(const Member& other) noexcept { return *this = other.object_; }
  Member& operator=(std::nullptr_t) noexcept {
    object_ = nullptr;
    return *this;
  }

  T* get() const noexcept { return object_; }
  T* operator->() const noexcept { return object_; }
  T& operator*() const noexcept { return *object_; }
  explicit operator bool() const noexcept { return object_ != nullptr; }
  operator T*() const noexcept { return object_; }  // NOLINT(google-explicit-constructor)

 private:
  T* object_ = nullptr;
};

// The marker's interface to trace(): report each reference the object holds.
class Visitor {
 public:
  template <class T>
  void trace(const Member<T>& member) {
    if (T* object = member.get()) visit(object);
  }
  // A raw pointer to a heap object (or nullptr), for containers of pointers.
  // Whoever stores such a pointer into a heap object calls
  // handoff::write_barrier(&field) after the store (write_barrier.h).
  void trace_raw(const void* object) {
    if (object != nullptr) visit(object);
  }
  // Every aligned word in [begin, end) that points into a live object keeps
  // it alive (interior pointers too), as for stacks: for untyped memory.
  void trace_conservative(const void* begin, const void* end) { visit_conservative(begin, end); }
  // An ephemeron table (ephemeron.h): each value is reached only through
  // its key; the table keeps no key alive.
  void trace_ephemerons(const detail::EphemeronTable& table) { visit_ephemerons(table); }

 protected:
  Visitor() = default;
  ~Visitor() = default;
  virtual void visit(const void* object) = 0;
  virtual void visit_conservative(const void* begin, const void* end) = 0;
  virtual void visit_ephemerons(const detail::EphemeronTable& table) = 0;
};

// A heap array with trailing elements: Array<double>, Array<Member<Node>>.
// Made with Heap::make_array<E>(length); elements are value-initialised.
template <class E>
class Array {
 public:
  static_assert(std::is_trivially_destructible_v<E>, "Array elements must be trivially destructible");
  explicit Array(std::size_t length) noexcept : length_(length) {
    for (std::size_t i = 0; i < length; ++i) new (&data()[i]) E();
  }
  std::size_t size() const noexcept { return length_; }
  E* data() noexcept { return reinterpret_cast<E*>(this + 1); }
  const E* data() const noexcept { return reinterpret_cast<const E*>(this + 1); }
  E& operator[](std::size_t i) noexcept { return data()[i]; }
  const E& operator[](std::size_t i) const noexcept { return data()[i]; }
  E* begin() noexcept { return data(); }
  E* end() noexcept { return data() + length_; }

  void trace(Visitor& visitor) const {
    if constexpr (requires(const E& e) { visitor.trace(e); }) {
      for (std::size_t i = 0; i < length_; ++i) visitor.trace(data()[i]);
    }
  }

 private:
  std::size_t length_;
};

namespace detail {
// Heap::make<Array<E>>(n) would allocate room for no element and then
// construct n of them: make and try_make refuse Array types at compile
// time (make_array is the way).
template <class T>
inline constexpr bool kIsArray = false;
template <class E>
inline constexpr bool kIsArray<Array<E>> = true;
}  // namespace detail

}  // namespace handoff
