#include <handoff/check.h>
#include <handoff/error.h>

#include <cstdio>
#include <cstdlib>

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
