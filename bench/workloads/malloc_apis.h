// The malloc-family allocators, each used the way its users deploy it (as
// in bench/alloc_reclaim.cpp): glibc, jemalloc and tcmalloc through
// std::malloc/std::free (jemalloc and tcmalloc are linked in and replace
// them), mimalloc through mi_malloc/mi_free, tbbmalloc through
// scalable_malloc/scalable_free. Exactly one HANDOFF_BENCH_BACKEND_* is
// defined by bench/CMakeLists.txt.
#pragma once

#include <cstddef>
#include <cstdlib>

#if defined(HANDOFF_BENCH_BACKEND_MIMALLOC)
#include <mimalloc.h>
#elif defined(HANDOFF_BENCH_BACKEND_TBBMALLOC)
#include <tbb/scalable_allocator.h>
#elif !defined(HANDOFF_BENCH_BACKEND_GLIBC) && !defined(HANDOFF_BENCH_BACKEND_JEMALLOC) && \
    !defined(HANDOFF_BENCH_BACKEND_TCMALLOC)
#error "define exactly one malloc-family HANDOFF_BENCH_BACKEND_* (see bench/CMakeLists.txt)"
#endif

namespace bench {

struct MallocApi {
#if defined(HANDOFF_BENCH_BACKEND_MIMALLOC)
  static void* allocate(std::size_t size) noexcept { return mi_malloc(size); }
  static void release(void* p) noexcept { mi_free(p); }
#elif defined(HANDOFF_BENCH_BACKEND_TBBMALLOC)
  static void* allocate(std::size_t size) noexcept { return scalable_malloc(size); }
  static void release(void* p) noexcept { scalable_free(p); }
#else
  static void* allocate(std::size_t size) noexcept { return std::malloc(size); }
  static void release(void* p) noexcept { std::free(p); }
#endif
};

}  // namespace bench
