// The Boehm-Demers-Weiser GC backend of the workloads (backend.h), used as
// a collector: GC_MALLOC (GC_MALLOC_ATOMIC for pointer-free payloads),
// nothing freed explicitly, threads registered with GC_register_my_thread.
//
// Variants (--backend): boehm (stop-the-world, the library's default, with
// its parallel marker when the build has one) and boehm-incremental
// (GC_enable_incremental). --max-heap-mb sets GC_set_max_heap_size; an
// allocation the limit refuses returns NULL and the run reports out of
// memory. Pauses are timed with GC_set_on_collection_event, from
// "stop the world" to "world started".
#pragma once

#include "backend.h"

#define GC_THREADS 1
#include <gc/gc.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <type_traits>

namespace bench {

namespace boehm_detail {
inline std::uint64_t now_ns() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count());
}
// Written by the collecting thread with the allocation lock held.
inline std::uint64_t stop_started_ns = 0;
inline std::uint64_t pause_ns_total = 0;
inline std::uint64_t pause_ns_max = 0;
inline std::uint64_t pauses = 0;
inline void on_event(GC_EventType event) {
  if (event == GC_EVENT_PRE_STOP_WORLD) {
    stop_started_ns = now_ns();
  } else if (event == GC_EVENT_POST_START_WORLD && stop_started_ns != 0) {
    const std::uint64_t pause = now_ns() - stop_started_ns;
    pause_ns_total += pause;
    pause_ns_max = std::max(pause_ns_max, pause);
    ++pauses;
    stop_started_ns = 0;
  }
}
}  // namespace boehm_detail

class BoehmBackend {
 public:
  static constexpr bool kFreesExplicitly = false;
  static constexpr const char* kVariants[] = {"boehm", "boehm-incremental"};
  template <class T>
  using Ref = T*;
  template <class E>
  using ArrayOf = RawArray<E>;

  // GC_INIT() has run in main() before this.
  explicit BoehmBackend(const BackendOptions& options) : probe_(options.live_probe) {
    GC_allow_register_threads();
    GC_set_on_collection_event(boehm_detail::on_event);
    if (options.variant == "boehm-incremental") GC_enable_incremental();
    if (options.max_heap_bytes != 0) GC_set_max_heap_size(options.max_heap_bytes);
    incremental_ = GC_is_incremental_mode() != 0;
    gc_at_start_ = GC_get_gc_no();
  }

  template <class T, class... Args>
  T* make(Args&&... args) {
    return new (checked(GC_MALLOC(sizeof(T)), sizeof(T))) T(std::forward<Args>(args)...);
  }
  template <class T>
  void release(T*) noexcept {}
  template <class E>
  RawArray<E>* make_array(std::size_t n) {
    const std::size_t bytes = sizeof(RawArray<E>) + n * sizeof(E);
    void* p = std::is_arithmetic_v<E> ? GC_MALLOC_ATOMIC(bytes) : GC_MALLOC(bytes);
    return new (checked(p, bytes)) RawArray<E>(n);
  }
  template <class E>
  void release_array(RawArray<E>*) noexcept {}
  Blob* make_blob(std::uint32_t bytes, std::uint32_t tag) {
    return new (checked(GC_MALLOC_ATOMIC(sizeof(Blob) + bytes), sizeof(Blob) + bytes)) Blob(bytes, tag);
  }
  void release_blob(Blob*) noexcept {}

  class Thread {
   public:
    explicit Thread(BoehmBackend&) {
      if (GC_thread_is_registered()) return;  // the main thread, since GC_INIT
      GC_stack_base base{};
      if (GC_get_stack_base(&base) != GC_SUCCESS) std::abort();
      registered_ = GC_register_my_thread(&base) == GC_SUCCESS;
    }
    ~Thread() {
      if (registered_) GC_unregister_my_thread();
    }
    Thread(const Thread&) = delete;
    Thread& operator=(const Thread&) = delete;

   private:
    bool registered_ = false;
  };
  struct Blocking {
    explicit Blocking(BoehmBackend&) {}  // threads are stopped by signals, blocked or not
  };
  template <class T>
  class Global {
   public:
    Global(BoehmBackend&, T* object) : cell_(static_cast<T**>(GC_MALLOC_UNCOLLECTABLE(sizeof(T*)))) {
      *checked(cell_, sizeof(T*)) = object;
    }
    ~Global() { GC_FREE(cell_); }
    Global(const Global&) = delete;
    Global& operator=(const Global&) = delete;
    T* get() const noexcept { return *cell_; }

   private:
    T** cell_;
  };

  void probe_live() {
    if (!probe_) return;
    GC_gcollect();
    live_max_ = std::max<std::uint64_t>(live_max_, GC_get_heap_size() - GC_get_free_bytes());
  }

  void counters(Json& json) const {
    json.field("incremental", incremental_);
    json.field("parallel_markers", GC_get_parallel() + 1);
    json.field("collections", static_cast<std::uint64_t>(GC_get_gc_no() - gc_at_start_));
    json.field("pauses", boehm_detail::pause_ns_total == 0 ? 0 : boehm_detail::pauses);
    json.field("pause_ns_total", boehm_detail::pause_ns_total);
    json.field("pause_ns_max", boehm_detail::pause_ns_max);
    json.field("full_gc_total_ms", static_cast<std::uint64_t>(GC_get_full_gc_total_time()));
    json.field("heap_size_bytes", static_cast<std::uint64_t>(GC_get_heap_size()));
    json.field("free_bytes", static_cast<std::uint64_t>(GC_get_free_bytes()));
    json.field("bytes_allocated", static_cast<std::uint64_t>(GC_get_total_bytes()));
    json.field("live_bytes_probe_max", live_max_);
  }

 private:
  template <class P>
  static P* checked(P* p, std::size_t bytes) {
    if (p == nullptr) [[unlikely]] out_of_memory(bytes);
    return p;
  }
  static void* checked(void* p, std::size_t bytes) { return checked<void>(p, bytes); }

  bool probe_;
  bool incremental_ = false;
  GC_word gc_at_start_ = 0;
  std::uint64_t live_max_ = 0;
};

}  // namespace bench
