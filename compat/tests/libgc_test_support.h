// Helpers shared by the libgc tests (libgc_test.cpp, finalize_test.cpp).
#pragma once

#include <gc/gc.h>

#include <cstring>

namespace handoff::libgc_test {

// Overwrites the stack below the caller, so that dead locals of earlier
// calls do not keep objects alive through the conservative stack scan.
[[gnu::noinline]] inline void clear_stack() {
  volatile char buffer[64 << 10];
  std::memset(const_cast<char*>(buffer), 0, sizeof buffer);
}

// A full collection with the stack below the caller cleared first.
inline void collect() {
  clear_stack();
  GC_gcollect();
}

}  // namespace handoff::libgc_test
