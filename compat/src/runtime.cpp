// The heap, its root scanner and the client-facing error paths.
//
// Call tree of the roots (world stopped, on the collecting thread, inside
// Marker::mark_roots):
//   scan_roots
//     -> GC_least/greatest_plausible_heap_addr from the allocator's bounds
//     -> scan_static_data     dl_iterate_phdr: writable PT_LOAD segments of
//                             every object but this library, minus
//                             GC_exclude_static_roots ranges, filtered by the
//                             GC_register_has_static_roots_callback function
//     -> GC_add_roots ranges  conservatively
//     -> uncollectable objects, marked (and so traced by their kind)
//     -> objects queued for finalization (finalize.cpp)
// The registries it reads sit behind `registry_mutex`, which no thread holds
// across an allocation or a safepoint, so a stopped thread never holds it.
#include "runtime.h"

#include "exported.h"

#include <dlfcn.h>
#include <link.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <new>
#include <unordered_set>
#include <utility>
#include <vector>

namespace handoff::compat {
namespace {

struct Range {
  std::uintptr_t begin;
  std::uintptr_t end;
};

struct Registry {
  std::mutex mutex;
  std::vector<Range> roots;       // GC_add_roots
  std::vector<Range> exclusions;  // GC_exclude_static_roots
  std::unordered_set<void*> uncollectable;
};

Registry& registry() {
  static Registry* r = new Registry;  // never destroyed: used until the process ends
  return *r;
}

std::once_flag heap_once;

// Anything with static storage in this library: its segments are not roots.
const int kThisLibraryMarker = 0;

bool is_this_library(const dl_phdr_info& info) {
  const auto marker = reinterpret_cast<std::uintptr_t>(&kThisLibraryMarker);
  for (int i = 0; i < info.dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info.dlpi_phdr[i];
    if (ph.p_type != PT_LOAD) continue;
    const std::uintptr_t start = info.dlpi_addr + ph.p_vaddr;
    if (marker >= start && marker < start + ph.p_memsz) return true;
  }
  return false;
}

// [begin, end) minus the exclusions (sorted by begin), scanned piecewise.
void scan_excluding(Visitor& visitor, std::uintptr_t begin, std::uintptr_t end, const std::vector<Range>& excluded) {
  for (const Range& x : excluded) {
    if (x.end <= begin || x.begin >= end) continue;
    if (x.begin > begin) visitor.trace_conservative(reinterpret_cast<void*>(begin), reinterpret_cast<void*>(x.begin));
    begin = std::max(begin, x.end);
    if (begin >= end) return;
  }
  visitor.trace_conservative(reinterpret_cast<void*>(begin), reinterpret_cast<void*>(end));
}

struct StaticScan {
  Visitor* visitor;
  const std::vector<Range>* exclusions;
};

int scan_object_segments(dl_phdr_info* info, std::size_t, void* data) {
  auto& scan = *static_cast<StaticScan*>(data);
  if (is_this_library(*info)) return 0;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD || (ph.p_flags & PF_W) == 0) continue;
    const std::uintptr_t begin = info->dlpi_addr + ph.p_vaddr;
    const std::uintptr_t end = begin + ph.p_memsz;
    if (GC_has_static_roots_func filter = exported::has_static_roots.load(std::memory_order_acquire)) {
      if (filter(info->dlpi_name, reinterpret_cast<void*>(begin), ph.p_memsz) == 0) continue;
    }
    scan_excluding(*scan.visitor, begin, end, *scan.exclusions);
  }
  return 0;
}

void scan_roots(Visitor& visitor, void*) {
  // The range GC_MARK_AND_PUSH checks before it calls GC_mark_and_push
  // (kinds.cpp): set here, before any object is traced.
  const AddressBounds bounds = heap_if_created()->allocator().bounds();
  GC_least_plausible_heap_addr = reinterpret_cast<void*>(bounds.low);
  GC_greatest_plausible_heap_addr = reinterpret_cast<void*>(bounds.high - 1);
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  StaticScan scan{&visitor, &r.exclusions};
  dl_iterate_phdr(&scan_object_segments, &scan);
  for (const Range& range : r.roots) {
    visitor.trace_conservative(reinterpret_cast<void*>(range.begin), reinterpret_cast<void*>(range.end));
  }
  for (void* object : r.uncollectable) visitor.trace_raw(object);
  scan_finalizer_queue(visitor);
}

void create_heap() {
  HeapConfig config = HeapConfig::from_environment();
  if (early_settings().max_heap_bytes != 0) config.max_heap_bytes = early_settings().max_heap_bytes;
  config.generational = 0;  // C stores have no write barrier: every collection is full
  // libgc's trigger: collect once the bytes allocated since the last
  // collection reach heap / GC_free_space_divisor (default 3). With a heap
  // of live + allocated bytes that is allocated = live / (divisor - 1), so
  // growth_percent = 100 / (divisor - 1): 50 % by default, where handoff's
  // own default of 100 % gave w3m a third more peak RSS than Boehm's.
  // HANDOFF_GROWTH_PERCENT, when set, wins.
  if (std::getenv("HANDOFF_GROWTH_PERCENT") == nullptr && GC_free_space_divisor > 1) {
    config.growth_percent = std::max<std::uint64_t>(1, 100 / (GC_free_space_divisor - 1));
  }
  static Heap* heap = new Heap(config);  // never destroyed (see runtime.h)
  heap->add_root_scanner(&scan_roots, nullptr);
  heap->add_post_mark_hook(&finalization_post_mark, nullptr);
  // The heap is never destroyed, so HANDOFF_SHOW_STATS=1 reports at exit.
  if (config.show_stats != 0) {
    std::atexit([] {
      if (Heap* h = heap_if_created()) h->write_stats_text(std::cerr);
    });
  }
  runtime_internal::the_heap.store(heap, std::memory_order_release);
}

}  // namespace

std::atomic<Heap*> runtime_internal::the_heap{nullptr};

Heap& runtime_internal::create_heap_once() {
  std::call_once(heap_once, &create_heap);
  return *the_heap.load(std::memory_order_acquire);
}

EarlySettings& early_settings() noexcept {
  static EarlySettings settings;
  return settings;
}

void add_uncollectable(void* object) {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  r.uncollectable.insert(object);
}

bool remove_uncollectable(void* object) {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  return r.uncollectable.erase(object) != 0;
}

void add_root_range(const void* begin, const void* end) {
  auto b = reinterpret_cast<std::uintptr_t>(begin);
  auto e = reinterpret_cast<std::uintptr_t>(end);
  if (b >= e) return;
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  r.roots.push_back({b, e});
}

// libgc removes the root sets that lie entirely inside [begin, end).
void remove_root_range(const void* begin, const void* end) {
  auto b = reinterpret_cast<std::uintptr_t>(begin);
  auto e = reinterpret_cast<std::uintptr_t>(end);
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  std::erase_if(r.roots, [&](const Range& range) { return range.begin >= b && range.end <= e; });
}

void clear_root_ranges() {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  r.roots.clear();
}

void exclude_static_range(const void* begin, const void* end) {
  auto b = reinterpret_cast<std::uintptr_t>(begin);
  auto e = reinterpret_cast<std::uintptr_t>(end);
  if (b >= e) return;
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  r.exclusions.push_back({b, e});
  std::sort(r.exclusions.begin(), r.exclusions.end(), [](const Range& x, const Range& y) { return x.begin < y.begin; });
}

void clear_exclusions() {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  r.exclusions.clear();
}

void warn(const char* format, std::uintptr_t arg) {
  GC_warn_proc proc = exported::warn_proc.load(std::memory_order_acquire);
  proc(const_cast<char*>(format), static_cast<GC_word>(arg));
}

void fatal(const char* message) {
  if (GC_abort_func on_abort = GC_on_abort; on_abort != nullptr) {
    on_abort(message);
  } else {
    std::fprintf(stderr, "%s\n", message);
    std::fflush(stderr);
  }
  std::abort();
}

void unsupported(const char* name) {
  std::fprintf(stderr, "not supported by handoff's libgc: %s\n", name);
  std::fflush(stderr);
  std::abort();
}

}  // namespace handoff::compat
