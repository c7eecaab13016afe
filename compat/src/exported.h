// libgc's own declarations (Debian's libgc-dev headers, the ABI this library
// implements) and the process-wide settings the GC_* setters store.
#pragma once

#define GC_THREADS 1
#define GC_NO_THREAD_REDIRECTS 1
#include <gc/gc.h>
#include <gc/gc_disclaim.h>
#include <gc/gc_gcj.h>
#include <gc/gc_mark.h>
#include <gc/gc_typed.h>
#include <gc/javaxfc.h>

#include <atomic>

// Exported by libgc 8.2 but not declared in its headers.
extern "C" {
extern GC_abort_func GC_on_abort;
extern GC_push_other_roots_proc GC_push_other_roots;
}

namespace handoff::compat::exported {

void default_warn_proc(char* message, GC_word arg);

inline std::atomic<GC_warn_proc> warn_proc{&default_warn_proc};
inline std::atomic<GC_has_static_roots_func> has_static_roots{nullptr};

}  // namespace handoff::compat::exported

namespace handoff::compat {

// Root registries (runtime.cpp).
void add_root_range(const void* begin, const void* end);
void remove_root_range(const void* begin, const void* end);
void clear_root_ranges();
void exclude_static_range(const void* begin, const void* end);
void clear_exclusions();

}  // namespace handoff::compat
