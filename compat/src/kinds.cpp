// Object kinds made by the client and their mark procedures (gc_mark.h):
// GC_new_free_list, GC_new_kind, GC_new_proc, GC_mark_and_push,
// GC_push_all(_eager), and allocation of such a kind (GC_generic_malloc,
// GC_malloc_kind, GC_generic_malloc_many). Language runtimes use them for
// objects that only they know how to scan: guile's threads (whose VM stacks
// live outside the heap) and its smobs. Also typed objects (gc_typed.h:
// GC_make_descriptor, GC_malloc_explicitly_typed), whose descriptor lives
// in the object's last word as in libgc, and is followed when it is traced:
// guile's weak-key and weak-value table entries leave their weak word out
// of the bitmap, so scanning every word would keep all keys alive.
//
// A kind is a mark descriptor template. An object of client kind k carries
// `kind_types[k]` as its type header, a TypeInfo whose trace function
// (trace_client_kind) recovers k from the header and follows the
// descriptor the way libgc's marker does:
//
//   GC_DS_LENGTH      the first `length` bytes, conservatively (the object's
//                     size is added when the kind asked for it)
//   GC_DS_BITMAP      the words whose bit is set (most significant bit: the
//                     first word), conservatively
//   GC_DS_PROC        the kind's mark procedure, called as libgc calls it
//   GC_DS_PER_OBJECT  every word of the object (a superset of what the
//                     per-object descriptor names; gc_mark.h allows it)
//
// The mark stack a procedure sees. libgc passes its own mark stack pointer
// and limit and takes back the new pointer. Here the procedure gets a small
// array on the marking thread's stack: GC_mark_and_push pushes nothing onto
// it, but hands the pointer to the collector's Visitor (as one
// conservatively scanned word, so
// interior pointers count, as libgc's GC_mark_and_push accepts them with
// GC_all_interior_pointers), and the Visitor's own mark stack traces the
// object later by its own type. Entries pushed directly are not possible
// for a client: gc_mark.h declares GC_ms_entry opaque, one word wide. A
// procedure that returns anything but the pointer it was given is refused
// with a clear abort.
//
// Threads. Marking runs with the world stopped; the Visitor a mark
// procedure's GC_mark_and_push calls reach is a per-thread pointer, set only
// while that thread runs the procedure, so several marking threads would
// each reach their own. GC_mark_and_push outside a mark procedure aborts
// with a message. Kinds and procedures are registered under a mutex and
// published with a release store of their count; the marker reads them with
// the world stopped, after the registering thread reached a safepoint.
//
// GC_least_plausible_heap_addr and GC_greatest_plausible_heap_addr, which
// the GC_MARK_AND_PUSH macro compares against before it calls
// GC_mark_and_push, are set from the allocator's address bounds at the start
// of every collection's root scan (runtime.cpp), before anything is traced.
#include "exported.h"
#include "runtime.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <mutex>

namespace handoff::compat {
namespace {

// libgc's numbering: 0..3 are the predefined kinds (runtime.h), and the
// first mark procedures are reserved for its own use.
constexpr int kFirstClientKind = 4;
constexpr int kMaxKinds = 64;
constexpr unsigned kFirstClientProc = GC_RESERVED_MARK_PROCS;

struct KindSpec {
  GC_word descriptor = 0;
  bool add_size = false;
};

struct ClientKindCell {
  unsigned char pad;  // libgc's extra byte, as for the predefined kinds
  void trace(Visitor&) const {}  // replaced: its header becomes kind_types[k]
};

void trace_client_kind(const void* object, Visitor& visitor);

constexpr std::array<TypeInfo, kMaxKinds> make_kind_types() {
  std::array<TypeInfo, kMaxKinds> types{};
  for (TypeInfo& t : types) t = TypeInfo{TypeInfo::kMagic, "libgc client kind", &trace_client_kind, nullptr, nullptr};
  return types;
}

std::mutex registry_mutex;
std::array<KindSpec, kMaxKinds> kinds;
const std::array<TypeInfo, kMaxKinds> kind_types = make_kind_types();
std::atomic<int> kind_count{kFirstClientKind};
std::array<GC_mark_proc, GC_MAX_MARK_PROCS> procs{};
std::atomic<unsigned> proc_count{kFirstClientProc};

// The Visitor of the mark procedure running on this thread, if any.
thread_local Visitor* marking_visitor = nullptr;

// What a mark procedure may push onto: its entries are never read (see the
// header comment), but the procedure compares against the limit.
struct alignas(16) MarkStackEntry {
  void* start;
  GC_word descriptor;
};
constexpr std::size_t kMarkStackEntries = 64;

void scan_bitmap(const void* object, GC_word bits, std::size_t bytes, Visitor& visitor) {
  const auto* word = static_cast<const GC_word*>(object);
  const std::size_t words = bytes / sizeof(GC_word);
  bits &= ~static_cast<GC_word>(GC_DS_TAGS);
  for (std::size_t i = 0; bits != 0 && i < words; ++i, bits <<= 1) {
    if ((bits >> (sizeof(GC_word) * 8 - 1)) != 0) visitor.trace_conservative(word + i, word + i + 1);
  }
}

void run_mark_proc(const void* object, GC_word descriptor, Visitor& visitor) {
  const unsigned index = (descriptor >> GC_DS_TAG_BITS) & (GC_MAX_MARK_PROCS - 1);
  const GC_word env = descriptor >> (GC_DS_TAG_BITS + GC_LOG_MAX_MARK_PROCS);
  GC_mark_proc proc = index < proc_count.load(std::memory_order_acquire) ? procs[index] : nullptr;
  if (proc == nullptr) fatal("handoff's libgc: a kind's descriptor names a mark procedure GC_new_proc never returned");
  // On this frame, not in TLS: the library's TLS is initial-exec (see
  // compat/CMakeLists.txt) and must stay a few words.
  std::array<MarkStackEntry, kMarkStackEntries> mark_stack;
  auto* base = reinterpret_cast<GC_ms_entry*>(&mark_stack[0]);
  // The limit in units of the client's (one-word) GC_ms_entry.
  auto* limit = reinterpret_cast<GC_ms_entry*>(&mark_stack[kMarkStackEntries - 1]);
  Visitor* outer = marking_visitor;
  marking_visitor = &visitor;
  GC_ms_entry* top = proc(static_cast<GC_word*>(const_cast<void*>(object)), base, limit, env);
  marking_visitor = outer;
  if (top != base) {
    fatal("handoff's libgc: a mark procedure pushed mark-stack entries itself; only GC_mark_and_push and "
          "GC_push_all are supported");
  }
}

void trace_client_kind(const void* object, Visitor& visitor) {
  const auto* type = detail::type_of(object);
  const auto k = static_cast<std::size_t>(type - kind_types.data());
  const KindSpec spec = kinds[k];
  const std::size_t bytes = capacity_of(object);
  const GC_word descriptor = spec.descriptor + (spec.add_size ? bytes : 0);
  switch (descriptor & GC_DS_TAGS) {
    case GC_DS_LENGTH:
      visitor.trace_conservative(object, static_cast<const char*>(object) + std::min<std::size_t>(descriptor, bytes));
      return;
    case GC_DS_BITMAP:
      scan_bitmap(object, descriptor, bytes, visitor);
      return;
    case GC_DS_PROC:
      run_mark_proc(object, descriptor, visitor);
      return;
    default:  // GC_DS_PER_OBJECT
      visitor.trace_conservative(object, static_cast<const char*>(object) + bytes);
      return;
  }
}

Visitor& visitor_or_abort(const char* name) {
  if (marking_visitor == nullptr) {
    std::fprintf(stderr, "handoff's libgc: %s called outside a mark procedure\n", name);
    fatal("handoff's libgc: mark-stack function called outside a mark procedure");
  }
  return *marking_visitor;
}

// A typed object: `descriptor_offset(capacity)` holds its descriptor,
// past the client's bytes (make_typed asks for room).
std::size_t descriptor_offset(std::size_t capacity) noexcept { return (capacity & ~(sizeof(GC_word) - 1)) - sizeof(GC_word); }

struct TypedCell {
  unsigned char pad;
  void trace(Visitor& visitor) const {
    const std::size_t bytes = capacity_of(this);
    const std::size_t at = descriptor_offset(bytes);
    GC_word descriptor;
    std::memcpy(&descriptor, reinterpret_cast<const char*>(this) + at, sizeof descriptor);
    if ((descriptor & GC_DS_TAGS) == GC_DS_BITMAP) {
      scan_bitmap(this, descriptor, at, visitor);
    } else {  // GC_DS_LENGTH: the first `descriptor` bytes
      visitor.trace_conservative(this, reinterpret_cast<const char*>(this) + std::min<std::size_t>(descriptor, at));
    }
  }
};

}  // namespace

bool is_typed(const TypeInfo* type) noexcept { return type == type_info_of<TypedCell>(); }

int client_kind_of(const TypeInfo* type) noexcept {
  if (type < kind_types.data() || type >= kind_types.data() + kMaxKinds) return -1;
  return static_cast<int>(type - kind_types.data());
}

bool is_client_kind(int kind) noexcept {
  return kind >= kFirstClientKind && kind < kind_count.load(std::memory_order_acquire);
}

void* make_client_kind(Heap& h, std::size_t size, int kind) {
  if (!is_client_kind(kind)) {
    std::fprintf(stderr, "handoff's libgc: allocation of kind %d, which GC_new_kind never returned\n", kind);
    fatal("handoff's libgc: allocation of an unknown kind");
  }
  void* object = h.make_with_extra<ClientKindCell>(size);
  // No safepoint since the allocation, so no collection has seen the cell.
  detail::header_of(object).store(reinterpret_cast<std::uintptr_t>(&kind_types[static_cast<std::size_t>(kind)]),
                                  std::memory_order_relaxed);
  return object;
}

}  // namespace handoff::compat

using namespace handoff::compat;

extern "C" {

// A free list nobody reads: allocation of any kind goes through the heap.
void** GC_new_free_list_inner(void) {
  return static_cast<void**>(GC_malloc_uncollectable(sizeof(void*) * 129));  // libgc's MAXOBJGRANULES + 1
}
void** GC_new_free_list(void) { return GC_new_free_list_inner(); }

unsigned GC_new_kind_inner(void**, GC_word descriptor, int add_size, int) {
  std::lock_guard lock(registry_mutex);
  const int k = kind_count.load(std::memory_order_relaxed);
  if (k == kMaxKinds) fatal("handoff's libgc: GC_new_kind: too many kinds");
  kinds[static_cast<std::size_t>(k)] = {descriptor, add_size != 0};
  kind_count.store(k + 1, std::memory_order_release);
  return static_cast<unsigned>(k);
}
unsigned GC_new_kind(void** free_list, GC_word descriptor, int add_size, int clear) {
  return GC_new_kind_inner(free_list, descriptor, add_size, clear);
}

unsigned GC_new_proc_inner(GC_mark_proc proc) {
  std::lock_guard lock(registry_mutex);
  const unsigned index = proc_count.load(std::memory_order_relaxed);
  if (index == GC_MAX_MARK_PROCS) fatal("handoff's libgc: GC_new_proc: too many mark procedures");
  procs[index] = proc;
  proc_count.store(index + 1, std::memory_order_release);
  return index;
}
unsigned GC_new_proc(GC_mark_proc proc) { return GC_new_proc_inner(proc); }

// libgc's descriptors: a bitmap (most significant bit: word 0) when the
// pointer words fit in one, a length when every word is a pointer; a longer
// bitmap becomes a length over all `length` words, a superset.
GC_descr GC_make_descriptor(const GC_word* bitmap, size_t length) {
  constexpr std::size_t kBitmapWords = sizeof(GC_word) * 8 - GC_DS_TAG_BITS;
  std::size_t last = 0;  // one past the last pointer word
  bool all = true;
  for (std::size_t i = 0; i < length; ++i) {
    if (GC_get_bit(bitmap, i)) {
      last = i + 1;
    } else {
      all = false;
    }
  }
  if (all || last > kBitmapWords) return static_cast<GC_descr>(last * sizeof(GC_word)) | GC_DS_LENGTH;
  GC_descr d = GC_DS_BITMAP;
  for (std::size_t i = 0; i < last; ++i) {
    if (GC_get_bit(bitmap, i)) d |= GC_word{1} << (sizeof(GC_word) * 8 - 1 - i);
  }
  return d;
}

void* GC_malloc_explicitly_typed(size_t size, GC_descr descriptor) {
  const std::size_t rounded = (size + sizeof(GC_word) - 1) & ~(sizeof(GC_word) - 1);
  if (rounded < size || rounded + sizeof(GC_word) < rounded) return nullptr;
  void* object = allocate(rounded + sizeof(GC_word), Kind::kNormal);
  if (object == nullptr) return nullptr;
  // Still no safepoint since the allocation: retype it before any marker.
  std::memcpy(static_cast<char*>(object) + descriptor_offset(capacity_of(object)), &descriptor, sizeof descriptor);
  handoff::detail::header_of(object).store(reinterpret_cast<std::uintptr_t>(handoff::type_info_of<TypedCell>()),
                                           std::memory_order_relaxed);
  return object;
}
void* GC_malloc_explicitly_typed_ignore_off_page(size_t size, GC_descr descriptor) {
  return GC_malloc_explicitly_typed(size, descriptor);
}

GC_ms_entry* GC_mark_and_push(void* object, GC_ms_entry* top, GC_ms_entry*, void**) {
  handoff::Visitor& visitor = visitor_or_abort("GC_mark_and_push");
  visitor.trace_conservative(&object, &object + 1);
  return top;
}

void GC_push_all(void* bottom, void* top) { visitor_or_abort("GC_push_all").trace_conservative(bottom, top); }
void GC_push_all_eager(void* bottom, void* top) {
  visitor_or_abort("GC_push_all_eager").trace_conservative(bottom, top);
}

}  // extern "C"
