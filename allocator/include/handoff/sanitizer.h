// Sanitizer annotations, in one place. Each macro compiles to nothing when
// the matching sanitizer is off, so the allocation fast path is unchanged in
// release builds.
#pragma once

#include <cstddef>

#if defined(__SANITIZE_ADDRESS__)
#define HANDOFF_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HANDOFF_ASAN 1
#endif
#endif

#if defined(__SANITIZE_THREAD__)
#define HANDOFF_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define HANDOFF_TSAN 1
#endif
#endif

#if defined(HANDOFF_ASAN)
#include <sanitizer/asan_interface.h>
// Free cells and pooled blocks are poisoned so a stray read or write of
// memory the heap does not consider allocated is reported at once.
#define HANDOFF_POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define HANDOFF_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define HANDOFF_POISON(p, n) ((void)(p), (void)(n))
#define HANDOFF_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define HANDOFF_ALWAYS_INLINE inline __attribute__((always_inline))
#define HANDOFF_SLOW_PATH [[gnu::noinline, gnu::cold]]
