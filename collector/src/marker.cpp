#include "mark_target.h"

#include <handoff/check.h>
#include <handoff/sanitizer.h>

#include <array>
#include <cstdio>
#include <iostream>

namespace handoff::detail {
namespace {

// Conservative reads of stacks and register copies: a parked thread may be
// writing its own frames below the published top meanwhile, and ASan keeps
// redzones between locals. These reads look at every word and keep what
// looks like a pointer; they are exempt from instrumentation on purpose.
#define HANDOFF_NO_SANITIZE_SCAN __attribute__((no_sanitize("address", "thread")))

HANDOFF_NO_SANITIZE_SCAN std::uintptr_t load_word(const std::uintptr_t* p) noexcept {
  return *static_cast<const volatile std::uintptr_t*>(p);
}

}  // namespace

Marker::Marker(HeapInternals& heap, Mode mode)
    : heap_(heap), mode_(mode), version_(heap.mark_version), bounds_(heap.allocator.bounds()) {
  heap_.allocator.large_objects().for_each_object([&](void* object, std::size_t size) {
    large_.emplace_back(reinterpret_cast<std::uintptr_t>(object), size);
  });
  std::sort(large_.begin(), large_.end());
  stack_.reserve(4096);
}

const void* Marker::find_large(std::uintptr_t word) const noexcept {
  auto it = std::upper_bound(large_.begin(), large_.end(), std::make_pair(word, SIZE_MAX));
  if (it == large_.begin()) return nullptr;
  --it;
  return word < it->first + it->second ? reinterpret_cast<const void*>(it->first) : nullptr;
}

std::size_t Marker::object_capacity(const void* object) const {
  const void* cell = cell_of(object);
  if (heap_.allocator.pool().chunk_of(cell) != nullptr) {
    return MarkedBlock::of(cell)->cell_size() - kCellHeaderSize;
  }
  const auto* found = find_large(reinterpret_cast<std::uintptr_t>(cell));
  return found == nullptr ? 0 : heap_.allocator.large_objects().size_of(cell) - kCellHeaderSize;
}

bool Marker::try_mark(const void* object) {
  const void* cell = cell_of(object);
  std::size_t bytes;
  if (MarkedBlock* block = checked_target(cell)) {
    if (mode_ == Mode::kVerify) {
      if (!visited_.insert(object).second) return false;
      if (!block->is_marked(cell, version_)) ++verify_failures_;
    } else if (!block->mark(cell, version_)) {
      return false;
    }
    bytes = block->cell_size();
  } else {
    if (mode_ == Mode::kVerify) {
      if (!visited_.insert(object).second) return false;
      if (!LargeObjectSpace::is_marked(cell, version_)) ++verify_failures_;
    } else if (!LargeObjectSpace::mark(cell, version_)) {
      return false;
    }
    bytes = heap_.allocator.large_objects().size_of(cell);
  }
  marked_bytes_ += bytes;
  ++marked_objects_;
  return true;
}

void Marker::visit(const void* object) {
  if (try_mark(object)) stack_.push_back(object);
}

void Marker::visit_word(std::uintptr_t word) {
  if (!bounds_.contains(word)) return;  // outside everything the heap ever mapped: no lookup
  const void* p = reinterpret_cast<const void*>(word);
  const BlockPool& pool = heap_.allocator.pool();
  if (pool.chunk_of(p) != nullptr) {
    if (!pool.is_handed_out(p)) return;  // never read a pooled block
    const MarkedBlock* block = MarkedBlock::of(p);
    void* cell = block->cell_start(p);
    if (cell == nullptr || !block->live_bits().get(MarkedBlock::atom_of(cell))) return;  // allocated only
    visit(object_of(cell));
    return;
  }
  if (const void* cell = find_large(word)) visit(object_of(const_cast<void*>(cell)));
}

HANDOFF_NO_SANITIZE_SCAN void Marker::scan_words(const void* begin, const void* end, void* fake_stack) {
  auto first = (reinterpret_cast<std::uintptr_t>(begin) + sizeof(std::uintptr_t) - 1) & ~(sizeof(std::uintptr_t) - 1);
  const auto last = reinterpret_cast<std::uintptr_t>(end);
  for (auto p = first; p + sizeof(std::uintptr_t) <= last; p += sizeof(std::uintptr_t)) {
    const std::uintptr_t word = load_word(reinterpret_cast<const std::uintptr_t*>(p));
#if defined(HANDOFF_ASAN)
    void* frame_begin = nullptr;
    void* frame_end = nullptr;
    if (fake_stack != nullptr &&
        __asan_addr_is_in_fake_stack(fake_stack, reinterpret_cast<void*>(word), &frame_begin, &frame_end) != nullptr) {
      // One level: a call that uses a fake frame keeps its address in its
      // real frame or a register, so every live fake frame is found from there.
      scan_words(frame_begin, frame_end, nullptr);
    }
#else
    (void)fake_stack;
#endif
    visit_word(word);
  }
}

// The collecting thread's own stack is in heap_.threads like every other.
void Marker::mark_roots() {
  for (MutatorThread* thread : heap_.threads) {
#if defined(HANDOFF_TEST_HOOKS)
    if (!heap_.hooks.scan_stacks) break;
#endif
    const StackSnapshot& s = thread->stack;
    scan_words(s.registers.data(), s.registers.data() + s.register_words, s.asan_fake_stack);
    HANDOFF_CHECK(s.top != nullptr && s.top <= s.base, "a stopped thread published no stack range");
    scan_words(s.top, s.base, s.asan_fake_stack);
  }
  heap_.handles.for_each([&](HandleBase& handle) {
    if (HandleTable::kind(handle) != HandleBase::Kind::kRoot) return;
    if (const void* object = HandleTable::object(handle)) visit(object);
  });
  for (const auto& [scan, context] : heap_.root_scanners) scan(*this, context);
  std::lock_guard lock(heap_.finalizer_mutex);
  for (void* object : heap_.finalizer_queue) visit(object);
  for (void* object : heap_.finalizing) visit(object);
}

// The mark loop. Objects popped from the mark stack pass through a small
// FIFO before they are traced, and each one's header is prefetched when it
// enters: marking a large heap is dominated by the cache miss on each
// object's first line, and the FIFO lets kPrefetchDistance of those misses
// overlap (the technique of Boehm's mark prefetching and of Cher, Hosking and
// Vijaykumar, ASPLOS 2004). Traversal order becomes partly breadth-first,
// which marking does not care about.
void Marker::drain() {
  constexpr std::size_t kPrefetchDistance = 8;
  std::array<const void*, kPrefetchDistance> ring;
  std::size_t head = 0;
  std::size_t count = 0;
  for (;;) {
    while (count < kPrefetchDistance && !stack_.empty()) {
      const void* object = stack_.back();
      stack_.pop_back();
      __builtin_prefetch(cell_of(object));
      ring[(head + count++) % kPrefetchDistance] = object;
    }
    if (count == 0) return;
    const void* object = ring[head];
    head = (head + 1) % kPrefetchDistance;
    --count;
    trace_one(object);
  }
}

void Marker::trace_one(const void* object) {
  const std::uintptr_t header = header_of(object).load(std::memory_order_relaxed);
  if ((header & kInConstruction) != 0) [[unlikely]] {
    // Its constructor is running: its fields may not be initialised yet,
    // so every word of it counts as a possible reference.
    const std::size_t bytes = object_capacity(object);
    scan_words(object, static_cast<const char*>(object) + bytes);
    // It is marked now, so an eden collection would not trace it again,
    // but its constructor may still store new objects into it.
    if (mode_ == Mode::kMark) heap_.constructing.push_back(object);
    return;
  }
  const auto* type = reinterpret_cast<const TypeInfo*>(header);
  if (type == nullptr || type->magic != TypeInfo::kMagic) [[unlikely]] {
    std::fprintf(stderr, "handoff: corrupt object header %#llx at %p\n", static_cast<unsigned long long>(header),
                 object);
    if (heap_.allocator.pool().chunk_of(object) != nullptr) MarkedBlock::of(object)->dump(std::cerr);
    HANDOFF_CHECK(false, "a marked object has no valid type header (heap corruption or a bad Member)");
  }
  if (type->trace == nullptr) return;
  tracing_ = object;
  type->trace(object, *this);
  tracing_ = nullptr;
}

}  // namespace handoff::detail
