#include <handoff/allocator.h>
#include <handoff/directory.h>  // directory_of
#include <handoff/epoch.h>
#include <handoff/large_object_space.h>
#include <handoff/mutant.h>
#include <handoff/platform.h>
#include <handoff/thread_allocator.h>

#include <string>

namespace handoff {

ThreadAllocator::ThreadAllocator(Allocator& allocator)
    : allocator_(allocator),
      owner_(allocator.attach(this)),
      participant_(allocator.epochs().register_thread()) {
  for (std::size_t cls = 0; cls < kNumSizeClasses; ++cls) {
    locals_[cls].bind(directory_of(allocator, cls), owner_, *participant_);
  }
}

ThreadAllocator::~ThreadAllocator() {
  flush();  // invariant 5: every block handed back first
  if (!HANDOFF_MUTANT(kDetachKeepsRecord)) {
    allocator_.epochs().unregister_thread(participant_);  // never delays a grace period again
  }
  allocator_.detach(this);
}

void* ThreadAllocator::allocate_unclassed(std::size_t size) {
  const Allocation a = allocate_large(size);
  if (a.cell == nullptr) throw allocation_error(a.failure, size);
  return a.cell;
}

void* ThreadAllocator::try_allocate_unclassed(std::size_t size) noexcept {
  const Allocation a = allocate_large(size);
  if (a.cell == nullptr) last_error_ = error_code_of(a.failure);
  return a.cell;
}

Allocation ThreadAllocator::allocate_large(std::size_t size) noexcept {
  if (size == 0) return {nullptr, AllocationFailure::kZeroSize};
  const Allocation a = allocator_.large_objects().allocate(size, false);  // checks the size
  if (a.cell != nullptr) remember_large(a.cell);
  return a;
}

void ThreadAllocator::remember_large(void* object) noexcept {
  try {
    unpublished_large_.push_back(object);
  } catch (...) {  // no room to remember it: published now, still valid to return
    allocator_.large_objects().publish(object);
  }
}

bool ThreadAllocator::flush() noexcept {
  for (auto& local : locals_) local.stop_allocating();
  const bool large = !unpublished_large_.empty();
  for (void* object : unpublished_large_) allocator_.large_objects().publish(object);
  unpublished_large_.clear();
  LocalAllocatorCounters now = counters();
  LocalAllocatorCounters delta = now;
  delta -= published_;
  published_ = now;
  allocator_.publish_counters(delta);
  // Every flush gives the current blocks up, so a thread that allocated a
  // small object since has refilled.
  return large || delta.refills != 0;
}

LocalAllocatorCounters ThreadAllocator::counters() const noexcept {
  LocalAllocatorCounters total;
  for (const auto& local : locals_) total += local.counters();
  return total;
}

}  // namespace handoff
