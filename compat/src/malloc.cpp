// Allocation entry points: GC_malloc and its kinds, GC_realloc, GC_free,
// GC_base, GC_size, the string helpers, aligned, typed and gcj allocation
// (served as conservatively scanned objects, a superset of what their
// descriptors would scan) and the debug and stubborn variants (forwarders).
#include "exported.h"
#include "runtime.h"

#include <handoff/large_object_space.h>

#include <cerrno>
#include <cstring>
#include <limits>

namespace handoff::compat {
namespace {

// The four kinds (runtime.h). sizeof == 1: that byte is the one libgc adds
// past the end of every object.
struct ConservativeCell {
  unsigned char pad;
  void trace(Visitor& visitor) const {
    visitor.trace_conservative(this, reinterpret_cast<const char*>(this) + capacity_of(this));
  }
};
struct UncollectableCell : ConservativeCell {};
struct AtomicCell : Leaf {
  unsigned char pad;
};
struct AtomicUncollectableCell : Leaf {
  unsigned char pad;
};
static_assert(sizeof(ConservativeCell) == 1 && sizeof(AtomicCell) == 1);

template <class Cell>
void* make_cell(Heap& h, std::size_t size) {
  return h.make_with_extra<Cell>(size);
}

void* make(Heap& h, std::size_t size, Kind kind) {
  switch (kind) {
    case Kind::kPointerFree:
      return make_cell<AtomicCell>(h, size);
    case Kind::kNormal:
      return make_cell<ConservativeCell>(h, size);
    case Kind::kUncollectable:
      return make_cell<UncollectableCell>(h, size);
    case Kind::kAtomicUncollectable:
      return make_cell<AtomicUncollectableCell>(h, size);
  }
  return make_client_kind(h, size, static_cast<int>(kind));
}

[[gnu::noinline]] void* out_of_memory(std::size_t size) {
  GC_oom_func oom = GC_oom_fn;
  return oom != nullptr ? oom(size) : nullptr;
}

}  // namespace

std::size_t capacity_of(const void* object) noexcept {
  const void* cell = detail::cell_of(object);
  // One byte load, no chunk lookup: a chunk belongs to one pool, so a cell
  // of this heap lies in a block chunk exactly when it is in a block.
  if (detail::in_block_range(reinterpret_cast<std::uintptr_t>(cell))) {
    return MarkedBlock::of(cell)->cell_size() - detail::kCellHeaderSize;
  }
  return heap_if_created()->allocator().large_objects().size_of(cell) - detail::kCellHeaderSize;
}

int kind_of(const void* object) noexcept {
  const TypeInfo* type = detail::type_of(object);
  if (type == type_info_of<ConservativeCell>()) return static_cast<int>(Kind::kNormal);
  if (type == type_info_of<AtomicCell>()) return static_cast<int>(Kind::kPointerFree);
  if (type == type_info_of<UncollectableCell>()) return static_cast<int>(Kind::kUncollectable);
  if (type == type_info_of<AtomicUncollectableCell>()) return static_cast<int>(Kind::kAtomicUncollectable);
  if (is_typed(type)) return static_cast<int>(Kind::kNormal);  // GC_realloc makes it an untyped one
  return client_kind_of(type);
}

void* allocate(std::size_t size, Kind kind) {
  Heap& h = attached_heap();
  if (finalizers_pending()) [[unlikely]] after_collection();
  void* object;
  try {
    object = make(h, size, kind);
  } catch (const Error&) {
    return out_of_memory(size);
  }
  // Pointer-free memory is not cleared (libgc does not either); the rest is,
  // to its full capacity, so the conservative scan never sees stale words.
  if (kind != Kind::kPointerFree && kind != Kind::kAtomicUncollectable) std::memset(object, 0, capacity_of(object));
  if (kind == Kind::kUncollectable || kind == Kind::kAtomicUncollectable) add_uncollectable(object);
  return object;
}

// The client object containing `p`, or nullptr (also for objects of a heap
// this library did not create, which it never sees).
void* base_of(const void* p) noexcept {
  Heap* h = heap_if_created();
  if (h == nullptr || p == nullptr) return nullptr;
  void* object = h->find_object(p);
  return object != nullptr && kind_of(object) >= 0 ? object : nullptr;
}

}  // namespace handoff::compat

using handoff::compat::allocate;
using handoff::compat::Kind;

namespace {
// libgc's predefined kind numbers (GC_I_PTRFREE, GC_I_NORMAL in gc_inline.h).
constexpr int kKindPointerFree = 0;
constexpr int kKindNormal = 1;
}  // namespace

extern "C" {

void* GC_malloc(size_t size) { return allocate(size, Kind::kNormal); }
void* GC_malloc_atomic(size_t size) { return allocate(size, Kind::kPointerFree); }
void* GC_malloc_uncollectable(size_t size) { return allocate(size, Kind::kUncollectable); }
void* GC_malloc_atomic_uncollectable(size_t size) { return allocate(size, Kind::kAtomicUncollectable); }
void* GC_malloc_ignore_off_page(size_t size) { return allocate(size, Kind::kNormal); }
void* GC_malloc_atomic_ignore_off_page(size_t size) { return allocate(size, Kind::kPointerFree); }
void* GC_malloc_stubborn(size_t size) { return allocate(size, Kind::kNormal); }

void* GC_malloc_kind(size_t size, int kind) {
  if (kind < kKindPointerFree || (kind > 3 && !handoff::compat::is_client_kind(kind))) {
    handoff::compat::fatal("GC_malloc_kind: a kind that is neither predefined nor made by GC_new_kind");
  }
  return allocate(size, static_cast<Kind>(kind));
}
void* GC_malloc_kind_global(size_t size, int kind) { return GC_malloc_kind(size, kind); }
void* GC_generic_malloc(size_t size, int kind) { return GC_malloc_kind(size, kind); }
void* GC_generic_malloc_ignore_off_page(size_t size, int kind) { return GC_malloc_kind(size, kind); }
void* GC_generic_or_special_malloc(size_t size, int kind) { return GC_malloc_kind(size, kind); }
void* GC_generic_malloc_uncollectable(size_t size, int kind) {
  if (kind == kKindPointerFree) return allocate(size, Kind::kAtomicUncollectable);
  if (kind == kKindNormal) return allocate(size, Kind::kUncollectable);
  return GC_malloc_kind(size, kind);
}

void GC_free(void* object) {
  if (object == nullptr) return;
  void* base = handoff::compat::base_of(object);
  if (base != object) {
    handoff::compat::warn(base == nullptr ? "GC Warning: GC_free(%p): not an object of the GC heap; ignored\n"
                                          : "GC Warning: GC_free(%p): not the start of a GC object; ignored\n",
                          reinterpret_cast<std::uintptr_t>(object));
    return;
  }
  // An uncollectable object stops being a root; any object is otherwise
  // left to the next collection (handoff has no explicit free).
  handoff::compat::remove_uncollectable(object);
}

void* GC_realloc(void* old_object, size_t size) {
  using namespace handoff::compat;
  if (old_object == nullptr) return GC_malloc(size);
  if (size == 0) {
    GC_free(old_object);
    return nullptr;
  }
  if (base_of(old_object) != old_object) {
    fatal("GC_realloc: the old object is not the start of a GC object (handoff's libgc)");
  }
  const int kind = kind_of(old_object);
  const std::size_t capacity = capacity_of(old_object);
  // Same rule as libgc: keep the object while the new size fits and does not
  // waste more than half of it; clear what shrinking gives up, so stale
  // pointers there keep nothing alive.
  if (size < capacity && size >= capacity / 2) {
    if (kind != static_cast<int>(Kind::kPointerFree) && kind != static_cast<int>(Kind::kAtomicUncollectable)) {
      std::memset(static_cast<char*>(old_object) + size, 0, capacity - size);
    }
    return old_object;
  }
  void* fresh = allocate(size, static_cast<Kind>(kind));
  if (fresh == nullptr) return nullptr;
  std::memcpy(fresh, old_object, std::min(size, capacity));
  GC_free(old_object);
  return fresh;
}

void* GC_base(void* p) { return handoff::compat::base_of(p); }

size_t GC_size(const void* object) {
  return handoff::compat::base_of(object) == nullptr ? 0 : handoff::compat::capacity_of(object);
}

int GC_get_kind_and_size(const void* object, size_t* size) {
  if (size != nullptr) *size = GC_size(object);
  return handoff::compat::kind_of(object);
}

int GC_is_heap_ptr(const void* p) {
  handoff::Heap* h = handoff::compat::heap_if_created();
  return h != nullptr && p != nullptr && h->allocator().contains(p) ? 1 : 0;
}

char* GC_strdup(const char* s) {
  if (s == nullptr) return nullptr;
  const std::size_t n = std::strlen(s);
  auto* copy = static_cast<char*>(GC_malloc_atomic(n + 1));
  if (copy == nullptr) {
    errno = ENOMEM;
    return nullptr;
  }
  std::memcpy(copy, s, n + 1);
  return copy;
}

char* GC_strndup(const char* s, size_t limit) {
  const std::size_t n = strnlen(s, limit);
  auto* copy = static_cast<char*>(GC_malloc_atomic(n + 1));
  if (copy == nullptr) {
    errno = ENOMEM;
    return nullptr;
  }
  std::memcpy(copy, s, n);
  copy[n] = '\0';
  return copy;
}

// Alignment beyond 8 is served from an interior pointer of a larger object
// (interior pointers keep it alive); GC_base then gives its start.
void* GC_memalign(size_t align, size_t size) {
  if (align <= 8) return GC_malloc(size);
  if (size > std::numeric_limits<std::size_t>::max() - align) return nullptr;
  auto* p = static_cast<char*>(GC_malloc(size + align));
  if (p == nullptr) return nullptr;
  const auto address = reinterpret_cast<std::uintptr_t>(p);
  return p + ((align - address % align) % align);
}

int GC_posix_memalign(void** out, size_t align, size_t size) {
  if (align < sizeof(void*) || (align & (align - 1)) != 0) return EINVAL;
  void* p = GC_memalign(align, size);
  if (p == nullptr) return ENOMEM;
  *out = p;
  return 0;
}

// A list of objects linked through their first word (GC_NEXT).
void* GC_malloc_many(size_t size) {
  if (size < sizeof(void*)) size = sizeof(void*);
  const std::size_t count = std::max<std::size_t>(1, 4096 / (size + 16));
  void* head = nullptr;
  for (std::size_t i = 0; i < count; ++i) {
    void* object = GC_malloc(size);
    if (object == nullptr) break;
    *static_cast<void**>(object) = head;
    head = object;
  }
  return head;
}

void GC_generic_malloc_many(size_t size, int kind, void** result) {
  if (kind != kKindNormal) {
    *result = GC_malloc_kind(size, kind);
    if (*result != nullptr) *static_cast<void**>(*result) = nullptr;
    return;
  }
  *result = GC_malloc_many(size);
}

// Typed allocation (GC_make_descriptor, GC_malloc_explicitly_typed) is in
// kinds.cpp: a descriptor may leave words unscanned on purpose (guile's weak
// tables hide their keys that way).
void* GC_calloc_explicitly_typed(size_t count, size_t size, GC_descr) {
  // Arrays of typed elements: every word, conservatively (a superset).
  if (size != 0 && count > std::numeric_limits<std::size_t>::max() / size) return nullptr;
  return GC_malloc(count * size);
}

// gcj objects start with their vtable pointer; scanned conservatively.
void GC_init_gcj_malloc(int, void*) {}
void* GC_gcj_malloc(size_t size, void* vtable) {
  void* object = GC_malloc(size);
  if (object != nullptr) *static_cast<void**>(object) = vtable;
  return object;
}
void* GC_gcj_malloc_ignore_off_page(size_t size, void* vtable) { return GC_gcj_malloc(size, vtable); }
void* GC_debug_gcj_malloc(size_t size, void* vtable, const char*, int) { return GC_gcj_malloc(size, vtable); }

// Stubborn objects are ordinary ones (libgc 8 does the same).
void GC_change_stubborn(const void*) {}
void GC_end_stubborn_change(const void*) {}
void GC_debug_change_stubborn(const void*) {}
void GC_debug_end_stubborn_change(const void*) {}
void GC_ptr_store_and_dirty(void* p, const void* q) { *static_cast<const void**>(p) = q; }
void GC_debug_ptr_store_and_dirty(void* p, const void* q) { *static_cast<const void**>(p) = q; }

// The debugging allocator's entry points: the same objects, no debug header.
void* GC_debug_malloc(size_t size, const char*, int) { return GC_malloc(size); }
void* GC_debug_malloc_atomic(size_t size, const char*, int) { return GC_malloc_atomic(size); }
void* GC_debug_malloc_uncollectable(size_t size, const char*, int) { return GC_malloc_uncollectable(size); }
void* GC_debug_malloc_atomic_uncollectable(size_t size, const char*, int) {
  return GC_malloc_atomic_uncollectable(size);
}
void* GC_debug_malloc_ignore_off_page(size_t size, const char*, int) { return GC_malloc(size); }
void* GC_debug_malloc_atomic_ignore_off_page(size_t size, const char*, int) { return GC_malloc_atomic(size); }
void* GC_debug_malloc_stubborn(size_t size, const char*, int) { return GC_malloc(size); }
void* GC_debug_generic_or_special_malloc(size_t size, int kind, const char*, int) {
  return GC_malloc_kind(size, kind);
}
void* GC_debug_realloc(void* p, size_t size, const char*, int) { return GC_realloc(p, size); }
void GC_debug_free(void* p) { GC_free(p); }
char* GC_debug_strdup(const char* s, const char*, int) { return GC_strdup(s); }
char* GC_debug_strndup(const char* s, size_t n, const char*, int) { return GC_strndup(s, n); }
void* GC_debug_malloc_replacement(size_t size) { return GC_malloc(size); }
void* GC_debug_realloc_replacement(void* p, size_t size) { return GC_realloc(p, size); }

}  // extern "C"
