// The local allocators of one thread: one LocalAllocator per size class, for
// one Allocator. Create it on the thread that allocates, keep it for the
// thread's life; destroying it hands every block back (DESIGN.md invariant
// 5). Not thread-safe: exactly one thread uses a ThreadAllocator.
//
//   handoff::Allocator heap;
//   handoff::ThreadAllocator thread(heap);     // on each allocating thread
//   void* p = thread.allocate(48);             // fast path inline
#pragma once

#include <handoff/config.h>  // refuses headers of another build (test hooks, sanitizers)
#include <handoff/error.h>
#include <handoff/local_allocator.h>
#include <handoff/sanitizer.h>
#include <handoff/size_classes.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace handoff {

class Allocator;
class EpochParticipant;  // internal: epoch.h

class ThreadAllocator {
 public:
  explicit ThreadAllocator(Allocator& allocator);
  ~ThreadAllocator();
  ThreadAllocator(const ThreadAllocator&) = delete;
  ThreadAllocator& operator=(const ThreadAllocator&) = delete;

  // Fast path in allocate_inlines.h. Throws handoff::Error: kZeroSize,
  // kSizeOverflow, kOutOfMemory. The heap is unchanged when it throws.
  void* allocate(std::size_t size);
  // Same, but returns nullptr and records the code in last_error().
  void* try_allocate(std::size_t size) noexcept;
  ErrorCode last_error() const noexcept { return last_error_; }

  // Gives every current block back to its directory and publishes this
  // thread's new large objects, so sweeps and lookups on other threads see
  // this thread's cells; also publishes counters. Returns whether this
  // thread allocated since the last flush (a refill or a large object).
  bool flush() noexcept;

  LocalAllocator& local_allocator(std::size_t size_class) noexcept { return locals_[size_class]; }
  Allocator& allocator() const noexcept { return allocator_; }
  std::uint32_t owner_id() const noexcept { return owner_; }
  LocalAllocatorCounters counters() const noexcept;

 private:
  // The one path for requests the size classes do not serve (0 and large
  // sizes); the two entry points only report its failure differently.
  HANDOFF_SLOW_PATH void* allocate_unclassed(std::size_t size);
  void* try_allocate_unclassed(std::size_t size) noexcept;
  Allocation allocate_large(std::size_t size) noexcept;
  void remember_large(void* object) noexcept;

  Allocator& allocator_;
  std::uint32_t owner_;
  EpochParticipant* participant_;
  ErrorCode last_error_ = ErrorCode::kNone;
  LocalAllocatorCounters published_;  // counters already handed to the Allocator
  std::vector<void*> unpublished_large_;  // large objects since the last flush
  std::array<LocalAllocator, kNumSizeClasses> locals_;
};

}  // namespace handoff
