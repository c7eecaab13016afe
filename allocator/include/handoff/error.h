// Errors a user of the heap can cause. Each carries a code, for programs,
// and a message that names the problem, for people. Raising one never
// changes heap state: the check happens before any block is touched.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>

namespace handoff {

enum class ErrorCode {
  kNone = 0,
  kZeroSize,         // allocate(0)
  kSizeOverflow,     // a size so large that rounding it up would wrap
  kOutOfMemory,      // the OS or the heap limit refused the memory
  kNotAHeapPointer,  // a pointer that is not a cell of this heap
  kBadTunable,       // a HANDOFF_* variable that does not parse
  kMisuse,           // an API used out of order (e.g. a detached cache)
  kStaleHandle,      // a CheckedHandle whose object was collected or that was released
  kHeapDestroyed,    // a CheckedHandle used after its heap was destroyed
};

const char* error_code_name(ErrorCode code) noexcept;

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message)
      : std::runtime_error(std::string("handoff: ") + error_code_name(code) + ": " + message),
        code_(code) {}
  ErrorCode code() const noexcept { return code_; }

 private:
  ErrorCode code_;
};

// Why an allocation failed. Every layer (LocalAllocator, ThreadAllocator,
// LargeObjectSpace, the collector's Heap) reports a failure by returning
// it, with a null cell, up to the entry point the user called; a throwing
// entry point is a thin wrapper that turns it into an Error through
// allocation_error(), the one place that words each message, and a
// non-throwing one records error_code_of(failure).
enum class AllocationFailure : unsigned char {
  kNone = 0,
  kZeroSize,      // allocate(0)
  kSizeOverflow,  // wraps once the large-object header and page rounding are added
  kUnbackable,    // one request larger than the machine can back (platform::backable_bytes)
  kNoBlock,       // no block for the size class: the OS or the heap limit refused
  kNoMapping,     // no mapping for a large object: the OS or the heap limit refused
};

struct Allocation {
  void* cell = nullptr;
  AllocationFailure failure = AllocationFailure::kNone;  // why `cell` is null
};

ErrorCode error_code_of(AllocationFailure failure) noexcept;
// The Error for a failed request of `size` bytes (kNoBlock: any size of the
// size class that had no block).
Error allocation_error(AllocationFailure failure, std::size_t size);

}  // namespace handoff
