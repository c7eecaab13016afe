// Tiered assertions (STYLE.md 4).
//
//   HANDOFF_CHECK(cond, msg)      always on; for internal invariants whose
//                                 failure means the heap is corrupt. Aborts
//                                 with file and line.
//   HANDOFF_ASSERT(cond)          debug builds (NDEBUG unset); internal
//                                 invariants on warm paths.
//   HANDOFF_EXPENSIVE(cond)       only with HANDOFF_EXPENSIVE_CHECKS (the
//                                 `debug` preset); whole-block or whole-heap
//                                 walks.
//
// Errors that users can cause are not assertions: they throw handoff::Error
// (error.h) before any state changes.
#pragma once

#include <source_location>

namespace handoff::detail {

[[noreturn]] void check_failed(const char* condition, const char* message,
                               std::source_location where = std::source_location::current());

}  // namespace handoff::detail

#define HANDOFF_CHECK(cond, msg)                                   \
  do {                                                             \
    if (!(cond)) [[unlikely]]                                      \
      ::handoff::detail::check_failed(#cond, (msg));               \
  } while (0)

#if defined(NDEBUG)
#define HANDOFF_ASSERT(cond) ((void)0)
#else
#define HANDOFF_ASSERT(cond) HANDOFF_CHECK(cond, "debug assertion")
#endif

#if defined(HANDOFF_EXPENSIVE_CHECKS)
#define HANDOFF_EXPENSIVE(cond) HANDOFF_CHECK(cond, "expensive assertion")
inline constexpr bool kExpensiveChecks = true;
#else
#define HANDOFF_EXPENSIVE(cond) ((void)0)
inline constexpr bool kExpensiveChecks = false;
#endif
