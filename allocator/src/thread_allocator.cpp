#include <handoff/allocator.h>
#include <handoff/platform.h>
#include <handoff/thread_allocator.h>

#include <string>

namespace handoff {
namespace {

Error size_error(std::size_t size) {
  if (size == 0) {
    return Error(ErrorCode::kZeroSize, "allocate(0): a cell must have at least one byte");
  }
  return Error(ErrorCode::kSizeOverflow,
               "allocate(" + std::to_string(size) + "): the size overflows once the large-object header "
               "and page rounding are added (largest request: " +
                   std::to_string(LargeObjectSpace::max_request()) + " bytes)");
}

bool is_bad_size(std::size_t size) noexcept { return size == 0 || size > LargeObjectSpace::max_request(); }

}  // namespace

ThreadAllocator::ThreadAllocator(Allocator& allocator)
    : allocator_(allocator),
      owner_(allocator.attach(this)),
      participant_(allocator.epochs().register_thread()) {
  for (std::size_t cls = 0; cls < kNumSizeClasses; ++cls) {
    locals_[cls].bind(allocator.directory(cls), owner_, *participant_);
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
  if (is_bad_size(size)) throw size_error(size);
  if (size > platform::backable_bytes()) {
    throw Error(ErrorCode::kOutOfMemory, "large object of " + std::to_string(size) +
                                             " bytes: larger than this machine can back (" +
                                             std::to_string(platform::backable_bytes()) +
                                             " bytes: physical memory plus swap, or RLIMIT_AS)");
  }
  void* object = allocator_.large_objects().allocate(size, false);
  if (object == nullptr) {
    throw Error(ErrorCode::kOutOfMemory,
                "large object of " + std::to_string(size) +
                    " bytes: the OS refused the mapping or HANDOFF_MAX_HEAP_BYTES was reached");
  }
  remember_large(object);
  return object;
}

void* ThreadAllocator::try_allocate_unclassed(std::size_t size) noexcept {
  if (is_bad_size(size)) {
    last_error_ = size == 0 ? ErrorCode::kZeroSize : ErrorCode::kSizeOverflow;
    return nullptr;
  }
  void* object = allocator_.large_objects().allocate(size, false);
  if (object == nullptr) {
    last_error_ = ErrorCode::kOutOfMemory;
    return nullptr;
  }
  try {
    remember_large(object);
  } catch (...) {  // published instead: the object is still valid to return
  }
  return object;
}

void ThreadAllocator::remember_large(void* object) {
  try {
    unpublished_large_.push_back(object);
  } catch (...) {
    allocator_.large_objects().publish(object);  // keep the heap consistent
    throw;
  }
}

void ThreadAllocator::flush() noexcept {
  for (auto& local : locals_) local.stop_allocating();
  for (void* object : unpublished_large_) allocator_.large_objects().publish(object);
  unpublished_large_.clear();
  LocalAllocatorCounters now = counters();
  LocalAllocatorCounters delta = now;
  delta -= published_;
  published_ = now;
  allocator_.publish_counters(delta);
}

LocalAllocatorCounters ThreadAllocator::counters() const noexcept {
  LocalAllocatorCounters total;
  for (const auto& local : locals_) total += local.counters();
  return total;
}

}  // namespace handoff
