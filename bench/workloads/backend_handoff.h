// The handoff backend of the workloads (backend.h): objects come from
// handoff::Heap::make, references are Member<T>, nothing is freed by the
// workload; the collector reclaims what the workload dropped.
//
// Variants (--backend): handoff (the default configuration: generational,
// the concurrent sweeper on), handoff-nosweeper (HeapConfig.sweeper.enabled
// = 0: every block is swept lazily by the allocator that claims it) and
// handoff-nogen (HeapConfig.generational = 0: every collection is full).
#pragma once

#include "backend.h"

#include <handoff/heap.h>

#include <algorithm>
#include <cstdint>
#include <optional>

namespace bench {

class HandoffBackend {
 public:
  static constexpr bool kFreesExplicitly = false;
  static constexpr const char* kVariants[] = {"handoff", "handoff-nosweeper", "handoff-nogen"};
  template <class T>
  using Ref = handoff::Member<T>;
  template <class E>
  using ArrayOf = handoff::Array<E>;

  explicit HandoffBackend(const BackendOptions& options) : heap_(config_for(options)), probe_(options.live_probe) {}

  template <class T, class... Args>
  T* make(Args&&... args) {
    try {
      return heap_.make<T>(std::forward<Args>(args)...);
    } catch (const handoff::Error& error) {
      rethrow(error);
    }
  }
  template <class T>
  void release(T*) noexcept {}
  template <class E>
  handoff::Array<E>* make_array(std::size_t n) {
    try {
      return heap_.make_array<E>(n);
    } catch (const handoff::Error& error) {
      rethrow(error);
    }
  }
  template <class E>
  void release_array(handoff::Array<E>*) noexcept {}
  Blob* make_blob(std::uint32_t bytes, std::uint32_t tag) {
    try {
      return heap_.make_with_extra<Blob>(bytes, bytes, tag);
    } catch (const handoff::Error& error) {
      rethrow(error);
    }
  }
  void release_blob(Blob*) noexcept {}

  class Thread {
   public:
    explicit Thread(HandoffBackend& b) : scope_(b.heap_) {}

   private:
    handoff::ThreadScope scope_;
  };
  class Blocking {
   public:
    explicit Blocking(HandoffBackend& b) : scope_(b.heap_) {}

   private:
    handoff::ParkedScope scope_;
  };
  template <class T>
  class Global {
   public:
    Global(HandoffBackend& b, T* object) : root_(b.heap_, object) {}
    T* get() const { return root_.get(); }

   private:
    handoff::Root<T> root_;
  };

  // With --live-probe: a full collection here, and the largest live size
  // any probe saw. Only the probing thread's workload stops for it.
  void probe_live() {
    if (!probe_) return;
    heap_.collect();
    live_max_ = std::max<std::uint64_t>(live_max_, heap_.stats().live_bytes);
  }

  void counters(Json& json) const;
  handoff::Heap& heap() noexcept { return heap_; }

 private:
  static handoff::HeapConfig config_for(const BackendOptions& options) {
    handoff::HeapConfig config = handoff::HeapConfig::from_environment();
    if (options.variant == "handoff-nosweeper") config.sweeper.enabled = 0;
    if (options.variant == "handoff-nogen") config.generational = 0;
    if (options.max_heap_bytes != 0) config.max_heap_bytes = options.max_heap_bytes;
    if (options.growth_percent >= 0) config.growth_percent = static_cast<std::uint64_t>(options.growth_percent);
    return config;
  }
  [[noreturn]] static void rethrow(const handoff::Error& error) {
    if (error.code() == handoff::ErrorCode::kOutOfMemory) throw OutOfMemory(error.what());
    throw;
  }

  handoff::Heap heap_;
  bool probe_;
  std::uint64_t live_max_ = 0;
};

inline void HandoffBackend::counters(Json& json) const {
  const handoff::HeapStats s = heap_.stats();
  const handoff::LocalAllocatorCounters& c = s.allocator.counters;
  json.field("sweeper_enabled", heap_.config().sweeper.enabled != 0);
  json.field("max_heap_bytes", heap_.config().max_heap_bytes);
  json.field("growth_percent", heap_.config().growth_percent);
  json.field("generational", heap_.config().generational != 0);
  json.field("collections", s.collections);
  json.field("eden_collections", s.eden_collections);
  json.field("full_collections", s.full_collections);
  json.field("remembered_cards", s.remembered_cards);
  json.field("remembered_objects", s.remembered_objects);
  json.field("last_resort_collections", s.last_resort_collections);
  json.field("out_of_memory_errors", s.out_of_memory_errors);
  json.field("mark_ns_total", s.mark_ns_total);
  json.field("mark_ns_max", s.mark_ns_max);
  json.field("pause_ns_total", s.pause_ns_total);
  json.field("pause_ns_max", s.pause_ns_max);
  json.field("marked_bytes_total", s.marked_bytes_total);
  json.field("live_bytes_last", s.live_bytes);
  json.field("live_bytes_probe_max", live_max_);
  json.field("bytes_allocated", s.bytes_allocated);
  json.field("bytes_swept", s.bytes_swept);
  for (const auto& spec : handoff::LocalAllocatorCounters::table()) json.field(spec.name, c.*spec.field);
  json.field("sweeper_blocks_swept", s.sweeper.blocks_swept);
  json.field("sweeper_blocks_freed", s.sweeper.blocks_freed);
  json.field("sweeper_walks", s.sweeper.walks);
  json.field("sweeper_cycles_left", s.sweeper.cycles_left);
  json.field("sweeper_quiet_wakes", s.sweeper.quiet_wakes);
  json.field("epoch_advances", s.allocator.epoch.advances);
  json.field("pool_committed_bytes", s.allocator.pool.committed_bytes);
  json.field("pool_resident_bytes", s.allocator.pool.resident_bytes);
  json.field("large_objects_allocated", s.allocator.large.allocated);
}

}  // namespace bench
