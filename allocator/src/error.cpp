#include <handoff/check.h>
#include <handoff/error.h>
#include <handoff/large_object_space.h>
#include <handoff/platform.h>
#include <handoff/size_classes.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace handoff {

const char* error_code_name(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::kNone: return "no error";
    case ErrorCode::kZeroSize: return "zero-size allocation";
    case ErrorCode::kSizeOverflow: return "allocation size overflow";
    case ErrorCode::kOutOfMemory: return "out of memory";
    case ErrorCode::kNotAHeapPointer: return "not a heap pointer";
    case ErrorCode::kBadTunable: return "bad tunable";
    case ErrorCode::kMisuse: return "misuse";
    case ErrorCode::kStaleHandle: return "stale handle";
    case ErrorCode::kHeapDestroyed: return "heap destroyed";
  }
  return "unknown error";
}

ErrorCode error_code_of(AllocationFailure failure) noexcept {
  switch (failure) {
    case AllocationFailure::kNone: return ErrorCode::kNone;
    case AllocationFailure::kZeroSize: return ErrorCode::kZeroSize;
    case AllocationFailure::kSizeOverflow: return ErrorCode::kSizeOverflow;
    case AllocationFailure::kUnbackable:
    case AllocationFailure::kNoBlock:
    case AllocationFailure::kNoMapping: return ErrorCode::kOutOfMemory;
  }
  return ErrorCode::kOutOfMemory;
}

Error allocation_error(AllocationFailure failure, std::size_t size) {
  const std::string bytes = "allocation of " + std::to_string(size) + " bytes: ";
  const ErrorCode code = error_code_of(failure);
  switch (failure) {
    case AllocationFailure::kNone: break;
    case AllocationFailure::kZeroSize: return Error(code, "allocate(0): a cell must have at least one byte");
    case AllocationFailure::kSizeOverflow:
      return Error(code, bytes + "the size overflows once headers and page rounding are added (largest request: " +
                             std::to_string(LargeObjectSpace::max_request()) + " bytes)");
    case AllocationFailure::kUnbackable:
      return Error(code, bytes + "larger than this machine can back (" + std::to_string(platform::backable_bytes()) +
                             " bytes: physical memory plus swap, or RLIMIT_AS)");
    case AllocationFailure::kNoBlock: {
      const std::size_t cls = size_class_of(size);
      return Error(code, "no " + std::to_string(kBlockSize / 1024) + " KiB block available for size class " +
                             std::to_string(cls) + " (cell size " + std::to_string(class_size(cls)) +
                             " B): the OS refused memory or HANDOFF_MAX_HEAP_BYTES was reached");
    }
    case AllocationFailure::kNoMapping:
      return Error(code, "large object of " + std::to_string(size) +
                             " bytes: the OS refused the mapping or HANDOFF_MAX_HEAP_BYTES was reached");
  }
  HANDOFF_CHECK(false, "allocation_error called for a request that did not fail");
  return Error(code, "no error");
}

namespace detail {

void check_failed(const char* condition, const char* message, std::source_location where) {
  std::fprintf(stderr, "handoff: internal check failed: %s (%s)\n  at %s:%u in %s\n", condition,
               message, where.file_name(), static_cast<unsigned>(where.line()),
               where.function_name());
  std::fflush(stderr);
  std::abort();
}

}  // namespace detail
}  // namespace handoff
