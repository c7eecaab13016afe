// The allocation fast path, in one place (STYLE.md 1). Per request:
//   one range compare (size 0 and sizes above the classes both fail it),
//   one table load (size -> class), one bump compare in the free list.
// No atomics, no locks, no bitmap writes. Everything else is out of line.
#pragma once

#include <handoff/local_allocator.h>
#include <handoff/thread_allocator.h>

namespace handoff {

HANDOFF_ALWAYS_INLINE void* LocalAllocator::allocate() {
  return free_list_.allocate([this] { return allocate_slow(); });
}

HANDOFF_ALWAYS_INLINE void* LocalAllocator::try_allocate() noexcept {
  return free_list_.allocate([this] { return try_allocate_slow(); });
}

HANDOFF_ALWAYS_INLINE void* ThreadAllocator::allocate(std::size_t size) {
  // size - 1 wraps for size 0, so one compare rejects 0 and large sizes.
  if (size - 1 < kMaxSmallSize) [[likely]] return locals_[size_class_of(size)].allocate();
  return allocate_unclassed(size);
}

HANDOFF_ALWAYS_INLINE void* ThreadAllocator::try_allocate(std::size_t size) noexcept {
  if (size - 1 < kMaxSmallSize) [[likely]] {
    if (void* cell = locals_[size_class_of(size)].try_allocate()) [[likely]] return cell;
    last_error_ = ErrorCode::kOutOfMemory;
    return nullptr;
  }
  return try_allocate_unclassed(size);
}

}  // namespace handoff
