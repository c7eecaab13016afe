// Initialisation, collection control, statistics, the warn and out-of-memory
// procedures, the exported variables and the tuning setters.
//
// libgc's tuning knobs (free-space divisor, full-collection frequency, time
// limit, retries, ...) are stored and returned but steer nothing: handoff's
// trigger has its own tunables (HANDOFF_* variables, README). Callbacks that
// only observe (collection and thread events, start callback) are stored and
// never called; those that would change what is kept alive (other roots,
// toggle references) are refused with the "not supported" abort.
#include "exported.h"
#include "runtime.h"

#include <algorithm>
#include <cstdarg>
#include <cstring>
#include <iostream>
#include <cstdio>
#include <mutex>
#include <vector>

// ---- exported variables (same names, types and sizes as libgc 8.2) ------

extern "C" {
GC_word GC_gc_no = 0;
int GC_parallel = 0;
static void* default_oom_fn(size_t) { return nullptr; }  // libgc's default: NULL
GC_oom_func GC_oom_fn = &default_oom_fn;
GC_on_heap_resize_proc GC_on_heap_resize = nullptr;
int GC_find_leak = 0;
int GC_all_interior_pointers = 1;
int GC_finalize_on_demand = 0;
int GC_java_finalization = 1;
GC_finalizer_notifier_proc GC_finalizer_notifier = nullptr;
int GC_dont_gc = 0;
int GC_dont_expand = 0;
int GC_use_entire_heap = 0;
int GC_full_freq = 19;
GC_word GC_non_gc_bytes = 0;
int GC_no_dls = 0;
GC_word GC_free_space_divisor = 3;
GC_word GC_max_retries = 0;
char* GC_stackbottom = nullptr;
int GC_dont_precollect = 0;
unsigned long GC_time_limit = GC_TIME_UNLIMITED;
void* GC_least_plausible_heap_addr = nullptr;
void* GC_greatest_plausible_heap_addr = nullptr;
int GC_gcj_kind = 0;
int GC_gcj_debug_kind = 0;
void (*GC_same_obj_print_proc)(void*, void*) = nullptr;
void (*GC_is_valid_displacement_print_proc)(void*) = nullptr;
void (*GC_is_visible_print_proc)(void*) = nullptr;
// Not declared in gc.h, exported by libgc 8.2.
GC_abort_func GC_on_abort = nullptr;
GC_push_other_roots_proc GC_push_other_roots = nullptr;
size_t GC_debug_header_size = 0;
// libgc's internal free lists, read by its inline allocation macros: always
// empty here, so those macros take their slow path (GC_malloc_kind).
namespace {
void* empty_free_lists[4][129];
}
void** GC_objfreelist_ptr = empty_free_lists[0];
void** GC_aobjfreelist_ptr = empty_free_lists[1];
void** GC_uobjfreelist_ptr = empty_free_lists[2];
void** GC_auobjfreelist_ptr = empty_free_lists[3];
// libgc's private state block: exported, never meant for clients; here it
// only reserves the name at libgc's size.
unsigned char GC_arrays[0x2c9f0];
}  // extern "C"

namespace handoff::compat {
namespace exported {

void default_warn_proc(char* message, GC_word arg) {
  std::fprintf(stderr, message, static_cast<unsigned long>(arg));
  std::fflush(stderr);
}

}  // namespace exported
namespace {

// GC_disable's deferrals, innermost last (closed by GC_enable on any thread).
std::mutex disable_mutex;
std::vector<DeferGC*> disables;

std::atomic<bool> initialized{false};

GC_word gc_number() {
  Heap* h = heap_if_created();
  const GC_word n = h == nullptr ? 0 : h->stats().collections;
  GC_gc_no = n;
  return n;
}

template <class T>
struct Setting {
  std::atomic<T> value;
};

}  // namespace
}  // namespace handoff::compat

using namespace handoff::compat;

extern "C" {

void GC_init(void) {
  attached_heap();
  initialized.store(true, std::memory_order_release);
}
int GC_is_init_called(void) { return heap_if_created() != nullptr ? 1 : 0; }
void GC_deinit(void) {}

void GC_gcollect(void) {
  handoff::Heap& h = attached_heap();
  if (GC_dont_gc != 0) return;
  h.collect();
  gc_number();
  after_collection();
}
int GC_try_to_collect(GC_stop_func) {
  if (GC_dont_gc != 0) return 0;
  GC_gcollect();
  return 1;
}
void GC_gcollect_and_unmap(void) {
  GC_gcollect();
  heap().allocator().purge(true);
}
int GC_collect_a_little(void) { return 0; }  // never a collection in progress
void GC_start_incremental_collection(void) {}
void GC_enable_incremental(void) {}
int GC_is_incremental_mode(void) { return 0; }
int GC_incremental_protection_needs(void) { return GC_PROTECTS_NONE; }
int GC_expand_hp(size_t) { return 1; }

void GC_disable(void) {
  handoff::Heap& h = attached_heap();
  auto* scope = new handoff::DeferGC(h);
  std::lock_guard lock(disable_mutex);
  disables.push_back(scope);
  ++GC_dont_gc;
}

void GC_enable(void) {
  handoff::DeferGC* scope = nullptr;
  {
    std::lock_guard lock(disable_mutex);
    if (disables.empty()) fatal("GC_enable without a matching GC_disable (handoff's libgc)");
    scope = disables.back();
    disables.pop_back();
    --GC_dont_gc;
  }
  delete scope;  // may run the collection that was deferred
}

int GC_is_disabled(void) { return GC_dont_gc != 0 ? 1 : 0; }
void GC_set_disable_automatic_collection(int disable) {
  if (disable != 0 && GC_is_disabled() == 0) GC_disable();
  if (disable == 0 && GC_is_disabled() != 0) GC_enable();
}
int GC_get_disable_automatic_collection(void) { return GC_is_disabled(); }

void GC_set_max_heap_size(GC_word bytes) {
  if (heap_if_created() == nullptr) {
    early_settings().max_heap_bytes = bytes;
    return;
  }
  warn("GC Warning: GC_set_max_heap_size(%lu) after the heap was created: ignored by handoff's libgc "
       "(call it before GC_init, or set HANDOFF_MAX_HEAP_BYTES)\n",
       bytes);
}

// ---- statistics ----------------------------------------------------------

GC_word GC_get_gc_no(void) { return gc_number(); }
size_t GC_get_heap_size(void) {
  handoff::Heap* h = heap_if_created();
  return h == nullptr ? 0 : h->allocator().budget().charged();
}
size_t GC_get_free_bytes(void) {
  handoff::Heap* h = heap_if_created();
  if (h == nullptr) return 0;
  const auto s = h->stats();
  const std::size_t heap_bytes = h->allocator().budget().charged();
  return heap_bytes > s.live_bytes ? heap_bytes - s.live_bytes : 0;
}
size_t GC_get_unmapped_bytes(void) { return 0; }
// Counted from the first query after each collection (handoff keeps no
// per-collection allocation mark), so an approximation.
size_t GC_get_bytes_since_gc(void) {
  static std::mutex mutex;
  static std::uint64_t seen_collections = 0;
  static std::uint64_t allocated_then = 0;
  handoff::Heap* h = heap_if_created();
  if (h == nullptr) return 0;
  const auto s = h->stats();
  std::lock_guard lock(mutex);
  if (s.collections != seen_collections) {
    seen_collections = s.collections;
    allocated_then = s.bytes_allocated;
  }
  return s.bytes_allocated - allocated_then;
}
size_t GC_get_total_bytes(void) {
  handoff::Heap* h = heap_if_created();
  return h == nullptr ? 0 : h->stats().bytes_allocated;
}
size_t GC_get_memory_use(void) { return GC_get_heap_size() - GC_get_free_bytes(); }
size_t GC_get_expl_freed_bytes_since_gc(void) { return 0; }
size_t GC_get_obtained_from_os_bytes(void) { return GC_get_heap_size(); }
GC_word GC_get_non_gc_bytes(void) { return GC_non_gc_bytes; }
void GC_set_non_gc_bytes(GC_word n) { GC_non_gc_bytes = n; }
unsigned long GC_get_full_gc_total_time(void) {
  handoff::Heap* h = heap_if_created();
  return h == nullptr ? 0 : static_cast<unsigned long>(h->stats().pause_ns_total / 1000000);
}
void GC_start_performance_measurement(void) {}

void GC_get_heap_usage_safe(GC_word* heap_size, GC_word* free_bytes, GC_word* unmapped_bytes, GC_word* bytes_since_gc,
                            GC_word* total_bytes) {
  if (heap_size != nullptr) *heap_size = GC_get_heap_size();
  if (free_bytes != nullptr) *free_bytes = GC_get_free_bytes();
  if (unmapped_bytes != nullptr) *unmapped_bytes = 0;
  if (bytes_since_gc != nullptr) *bytes_since_gc = GC_get_bytes_since_gc();
  if (total_bytes != nullptr) *total_bytes = GC_get_total_bytes();
}

size_t GC_get_prof_stats(struct GC_prof_stats_s* out, size_t size) {
  struct GC_prof_stats_s s;
  s.heapsize_full = GC_get_heap_size();
  s.free_bytes_full = GC_get_free_bytes();
  s.unmapped_bytes = 0;
  s.bytes_allocd_since_gc = GC_get_bytes_since_gc();
  s.allocd_bytes_before_gc = GC_get_total_bytes() - s.bytes_allocd_since_gc;
  s.non_gc_bytes = GC_non_gc_bytes;
  s.gc_no = gc_number();
  s.markers_m1 = 0;
  s.bytes_reclaimed_since_gc = static_cast<GC_word>(-1);
  s.reclaimed_bytes_before_gc = static_cast<GC_word>(-1);
  s.expl_freed_bytes_since_gc = 0;
  s.obtained_from_os_bytes = GC_get_heap_size();
  const std::size_t n = std::min(size, sizeof s);
  std::memcpy(out, &s, n);
  if (size > n) std::memset(reinterpret_cast<char*>(out) + n, 0xff, size - n);
  return n;
}
size_t GC_get_prof_stats_unsafe(struct GC_prof_stats_s* out, size_t size) { return GC_get_prof_stats(out, size); }

void GC_dump(void) { GC_dump_named(nullptr); }
void GC_dump_named(const char* name) {
  std::printf("***GC Dump %s\n", name != nullptr ? name : "");
  if (handoff::Heap* h = heap_if_created()) {
    std::fflush(stdout);
    h->write_stats_text(std::cout);
  }
}
void GC_dump_regions(void) { GC_dump(); }

unsigned GC_get_version(void) { return (GC_VERSION_MAJOR << 16) | (GC_VERSION_MINOR << 8) | GC_VERSION_MICRO; }

// ---- warnings, out of memory, abort ----------------------------------------

void GC_set_warn_proc(GC_warn_proc proc) { exported::warn_proc.store(proc, std::memory_order_release); }
GC_warn_proc GC_get_warn_proc(void) { return exported::warn_proc.load(std::memory_order_acquire); }
void GC_ignore_warn_proc(char*, GC_word) {}
void GC_set_oom_fn(GC_oom_func fn) { GC_oom_fn = fn; }
GC_oom_func GC_get_oom_fn(void) { return GC_oom_fn; }
void GC_abort_on_oom(void) {
  std::fprintf(stderr, "GC_abort_on_oom: out of memory (handoff's libgc)\n");
  std::fflush(stderr);
  std::abort();
}
void GC_set_abort_func(GC_abort_func fn) { GC_on_abort = fn; }
GC_abort_func GC_get_abort_func(void) { return GC_on_abort; }

void GC_err_printf(const char* format, ...) {
  va_list args;
  va_start(args, format);
  std::vfprintf(stderr, format, args);
  va_end(args);
}
void GC_log_printf(const char* format, ...) {
  va_list args;
  va_start(args, format);
  std::vfprintf(stderr, format, args);
  va_end(args);
}
void GC_printf(const char* format, ...) {
  va_list args;
  va_start(args, format);
  std::vfprintf(stdout, format, args);
  va_end(args);
}
void GC_set_log_fd(int) {}

// ---- roots ---------------------------------------------------------------

void GC_add_roots(void* low, void* high) { add_root_range(low, high); }
void GC_remove_roots(void* low, void* high) { remove_root_range(low, high); }
void GC_clear_roots(void) { clear_root_ranges(); }
void GC_exclude_static_roots(void* low, void* high) { exclude_static_range(low, high); }
void GC_clear_exclusion_table(void) { clear_exclusions(); }
void GC_register_has_static_roots_callback(GC_has_static_roots_func fn) {
  exported::has_static_roots.store(fn, std::memory_order_release);
}
void GC_set_push_other_roots(GC_push_other_roots_proc fn) {
  if (fn != nullptr) unsupported("GC_set_push_other_roots");
  GC_push_other_roots = nullptr;
}
GC_push_other_roots_proc GC_get_push_other_roots(void) { return GC_push_other_roots; }

// ---- pointer checks and helpers (all interior pointers are valid) -------

void GC_noop1(GC_word) { asm volatile("" ::: "memory"); }
void* GC_same_obj(void* p, void*) { return p; }
void* GC_pre_incr(void** p, ptrdiff_t how_much) { return *p = static_cast<char*>(*p) + how_much; }
void* GC_post_incr(void** p, ptrdiff_t how_much) {
  void* old = *p;
  *p = static_cast<char*>(*p) + how_much;
  return old;
}
void* GC_is_visible(void* p) { return p; }
void* GC_is_valid_displacement(void* p) { return p; }
void GC_register_displacement(size_t) {}
void GC_debug_register_displacement(size_t) {}
void* GC_clear_stack(void* p) { return p; }
void GC_incr_bytes_allocd(size_t) {}
void GC_incr_bytes_freed(size_t) {}

static std::recursive_mutex alloc_lock;
void GC_alloc_lock(void) { alloc_lock.lock(); }
void GC_alloc_unlock(void) { alloc_lock.unlock(); }
void* GC_call_with_alloc_lock(GC_fn_type fn, void* client_data) {
  std::lock_guard lock(alloc_lock);
  return fn(client_data);
}

// ---- tuning knobs: stored, returned ---------------------------------------

void GC_set_all_interior_pointers(int) {}  // always on
int GC_get_all_interior_pointers(void) { return 1; }
void GC_set_find_leak(int v) { GC_find_leak = v; }
int GC_get_find_leak(void) { return GC_find_leak; }
void GC_set_finalize_on_demand(int v) { GC_finalize_on_demand = v; }
int GC_get_finalize_on_demand(void) { return GC_finalize_on_demand; }
void GC_set_java_finalization(int v) { GC_java_finalization = v; }
int GC_get_java_finalization(void) { return GC_java_finalization; }
void GC_set_finalizer_notifier(GC_finalizer_notifier_proc fn) { GC_finalizer_notifier = fn; }
GC_finalizer_notifier_proc GC_get_finalizer_notifier(void) { return GC_finalizer_notifier; }
void GC_set_dont_expand(int v) { GC_dont_expand = v; }
int GC_get_dont_expand(void) { return GC_dont_expand; }
void GC_set_full_freq(int v) { GC_full_freq = v; }
int GC_get_full_freq(void) { return GC_full_freq; }
void GC_set_no_dls(int v) { GC_no_dls = v; }
int GC_get_no_dls(void) { return GC_no_dls; }
void GC_set_free_space_divisor(GC_word v) { GC_free_space_divisor = v; }
GC_word GC_get_free_space_divisor(void) { return GC_free_space_divisor; }
void GC_set_max_retries(GC_word v) { GC_max_retries = v; }
GC_word GC_get_max_retries(void) { return GC_max_retries; }
void GC_set_dont_precollect(int v) { GC_dont_precollect = v; }
int GC_get_dont_precollect(void) { return GC_dont_precollect; }
void GC_set_time_limit(unsigned long v) { GC_time_limit = v; }
unsigned long GC_get_time_limit(void) { return GC_time_limit; }
static struct GC_timeval_s time_limit_tv = {GC_TIME_UNLIMITED, 0};
void GC_set_time_limit_tv(struct GC_timeval_s tv) { time_limit_tv = tv; }
struct GC_timeval_s GC_get_time_limit_tv(void) { return time_limit_tv; }
void GC_set_on_heap_resize(GC_on_heap_resize_proc fn) { GC_on_heap_resize = fn; }
GC_on_heap_resize_proc GC_get_on_heap_resize(void) { return GC_on_heap_resize; }
static GC_on_collection_event_proc collection_event = nullptr;
void GC_set_on_collection_event(GC_on_collection_event_proc fn) { collection_event = fn; }
GC_on_collection_event_proc GC_get_on_collection_event(void) { return collection_event; }
static GC_on_thread_event_proc thread_event = nullptr;
void GC_set_on_thread_event(GC_on_thread_event_proc fn) { thread_event = fn; }
GC_on_thread_event_proc GC_get_on_thread_event(void) { return thread_event; }
static GC_start_callback_proc start_callback = nullptr;
void GC_set_start_callback(GC_start_callback_proc fn) { start_callback = fn; }
GC_start_callback_proc GC_get_start_callback(void) { return start_callback; }
static GC_stop_func stop_func = nullptr;
void GC_set_stop_func(GC_stop_func fn) { stop_func = fn; }
GC_stop_func GC_get_stop_func(void) { return stop_func; }
static int pages_executable = 0;
void GC_set_pages_executable(int v) { pages_executable = v; }
int GC_get_pages_executable(void) { return pages_executable; }
static int force_unmap = 0;
void GC_set_force_unmap_on_gcollect(int v) { force_unmap = v; }
int GC_get_force_unmap_on_gcollect(void) { return force_unmap; }
static std::size_t min_bytes_allocd = 1;
void GC_set_min_bytes_allocd(size_t v) { min_bytes_allocd = v; }
size_t GC_get_min_bytes_allocd(void) { return min_bytes_allocd; }
static int rate = 10;
void GC_set_rate(int v) { rate = v; }
int GC_get_rate(void) { return rate; }
static int max_prior_attempts = 1;
void GC_set_max_prior_attempts(int v) { max_prior_attempts = v; }
int GC_get_max_prior_attempts(void) { return max_prior_attempts; }
static int manual_vdb = 0;
void GC_set_manual_vdb_allowed(int v) { manual_vdb = v; }
int GC_get_manual_vdb_allowed(void) { return manual_vdb; }
static GC_word allocd_bytes_per_finalizer = 10000;
void GC_set_allocd_bytes_per_finalizer(GC_word v) { allocd_bytes_per_finalizer = v; }
GC_word GC_get_allocd_bytes_per_finalizer(void) { return allocd_bytes_per_finalizer; }
static GC_await_finalize_proc await_finalize = nullptr;
void GC_set_await_finalize_proc(GC_await_finalize_proc fn) { await_finalize = fn; }
GC_await_finalize_proc GC_get_await_finalize_proc(void) { return await_finalize; }
void GC_set_toggleref_func(GC_toggleref_func fn) {
  if (fn != nullptr) unsupported("GC_set_toggleref_func");
}
GC_toggleref_func GC_get_toggleref_func(void) { return nullptr; }
size_t GC_get_size_map_at(int i) { return i <= 0 ? 16 : (static_cast<size_t>(i) + 1 + 8 + 15) / 16 * 16 - 8; }

}  // extern "C"

extern "C" size_t GC_get_debug_header_size(void) { return 0; }
