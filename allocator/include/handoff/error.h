// Errors a user of the heap can cause. Each carries a code, for programs,
// and a message that names the problem, for people. Raising one never
// changes heap state: the check happens before any block is touched.
#pragma once

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

}  // namespace handoff
