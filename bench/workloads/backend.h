// The allocator backend interface the workloads are written against.
//
// One workload body (workloads.h) runs on every backend. A backend is a
// class with this shape, chosen when the executable is built (one
// executable per backend family: jemalloc, mimalloc and tcmalloc each
// replace the process malloc, see bench/CMakeLists.txt) and configured at
// run time (--backend picks a variant, e.g. handoff with the concurrent
// sweeper on or off, Boehm GC with incremental mode on or off):
//
//   static constexpr bool kFreesExplicitly;   true: malloc family, the body
//                                             calls release*(); false: a
//                                             collector, release*() does
//                                             nothing and dropping the last
//                                             reference is the release
//   template <class T> using Ref = ...;       a reference field inside a
//                                             heap object (T* or Member<T>)
//   template <class E> using ArrayOf = ...;   heap array: size(), [], data()
//   T* make<T>(args...)                       a traced object (has a
//                                             template trace(V&) member)
//   ArrayOf<E>* make_array<E>(n)              value-initialised elements
//   Blob* make_blob(bytes)                    pointer-free payload
//   release(T*), release_array(a), release_blob(b)
//   Thread   RAII: the calling thread may allocate (GC: attaches it)
//   Blocking RAII: around a wait on a lock or condition variable (handoff:
//            parks, so a collection never waits for a blocked thread)
//   Global<T> a reference held outside any stack and heap object
//   probe_live()   called where the live heap peaks; with --live-probe a
//                  collector collects there and records the live size
//   counters(Json&) the backend's own counters for the result line
//
// Out of memory (a heap limit was reached) throws OutOfMemory; the driver
// reports the run as not completed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

namespace bench {

struct OutOfMemory : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Run-time settings every backend receives; those that do not apply to a
// backend are ignored (and the driver refuses them with a message).
struct BackendOptions {
  std::string variant;             // --backend
  std::uint64_t max_heap_bytes = 0;  // --max-heap-mb (collectors only)
  std::int64_t growth_percent = -1;  // --growth-percent (handoff only; -1 = default)
  bool live_probe = false;         // --live-probe (collectors only)
};

// A minimal JSON object writer for the result line.
class Json {
 public:
  explicit Json(std::string& out) : out_(out) { out_ += '{'; }
  void close() { out_ += '}'; }
  void field(const char* key, const std::string& value) {
    key_(key);
    out_ += '"';
    for (char c : value) {
      if (c == '"' || c == '\\') out_ += '\\';
      if (static_cast<unsigned char>(c) >= 0x20) out_ += c;
    }
    out_ += '"';
  }
  void field(const char* key, const char* value) { field(key, std::string(value)); }
  void field(const char* key, bool value) {
    key_(key);
    out_ += value ? "true" : "false";
  }
  void field(const char* key, double value) {
    key_(key);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.9g", value);
    out_ += buf;
  }
  template <class I>
    requires std::is_integral_v<I>
  void field(const char* key, I value) {
    key_(key);
    out_ += std::to_string(value);
  }
  void raw(const char* key, const std::string& json) {
    key_(key);
    out_ += json;
  }

 private:
  void key_(const char* key) {
    if (out_.back() != '{') out_ += ',';
    out_ += '"';
    out_ += key;
    out_ += "\":";
  }
  std::string& out_;
};

// A pointer-free object of variable size: what larson and the churn
// workloads allocate.
struct Blob {
  std::uint32_t bytes;  // payload bytes after the struct
  std::uint32_t tag;
  explicit Blob(std::uint32_t n, std::uint32_t t) noexcept : bytes(n), tag(t) {}
  unsigned char* payload() noexcept { return reinterpret_cast<unsigned char*>(this + 1); }
  template <class V>
  void trace(V&) const {}
};

// The array type of the non-handoff backends: the same interface as
// handoff::Array<E> (size(), operator[], data()).
template <class E>
class RawArray {
 public:
  explicit RawArray(std::size_t length) noexcept : length_(length) {
    for (std::size_t i = 0; i < length; ++i) new (&data()[i]) E();
  }
  std::size_t size() const noexcept { return length_; }
  E* data() noexcept { return reinterpret_cast<E*>(this + 1); }
  E& operator[](std::size_t i) noexcept { return data()[i]; }
  const E& operator[](std::size_t i) const noexcept { return reinterpret_cast<const E*>(this + 1)[i]; }

 private:
  std::size_t length_;
  std::size_t pad_ = 0;  // 16-byte header keeps doubles and pointers aligned
};

[[noreturn]] inline void out_of_memory(std::size_t bytes) {
  throw OutOfMemory("allocation of " + std::to_string(bytes) + " bytes failed");
}

// Every malloc-family backend: Api supplies allocate/release (malloc/free,
// mi_malloc/mi_free, scalable_malloc/scalable_free).
template <class Api>
class MallocBackend {
 public:
  static constexpr bool kFreesExplicitly = true;
  template <class T>
  using Ref = T*;
  template <class E>
  using ArrayOf = RawArray<E>;

  explicit MallocBackend(const BackendOptions&) {}

  template <class T, class... Args>
  T* make(Args&&... args) {
    return new (raw(sizeof(T))) T(std::forward<Args>(args)...);
  }
  template <class T>
  void release(T* object) noexcept {
    if constexpr (!std::is_trivially_destructible_v<T>) object->~T();
    Api::release(object);
  }
  template <class E>
  RawArray<E>* make_array(std::size_t n) {
    return new (raw(sizeof(RawArray<E>) + n * sizeof(E))) RawArray<E>(n);
  }
  template <class E>
  void release_array(RawArray<E>* a) noexcept {
    Api::release(a);
  }
  Blob* make_blob(std::uint32_t bytes, std::uint32_t tag) {
    return new (raw(sizeof(Blob) + bytes)) Blob(bytes, tag);
  }
  void release_blob(Blob* b) noexcept { Api::release(b); }

  struct Thread {
    explicit Thread(MallocBackend&) {}
  };
  struct Blocking {
    explicit Blocking(MallocBackend&) {}
  };
  template <class T>
  class Global {
   public:
    Global(MallocBackend&, T* object) : object_(object) {}
    T* get() const noexcept { return object_; }

   private:
    T* object_;
  };

  void probe_live() {}
  void counters(Json&) const {}

 private:
  static void* raw(std::size_t bytes) {
    void* p = Api::allocate(bytes);
    if (p == nullptr) [[unlikely]] out_of_memory(bytes);
    return p;
  }
};

}  // namespace bench
