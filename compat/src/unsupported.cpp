// Every libgc 8.2 function that handoff's libgc does not implement: a client
// that calls one stops with "not supported by handoff's libgc: NAME" instead
// of failing to load (a missing symbol) or misbehaving silently. The
// parameters are not declared: each stub aborts before it would read them.
//
// Left out on purpose: the rest of the mark-stack interface (gc_mark.h:
// mark bits, conditional pushes; kinds.cpp has what mark procedures use);
// thread suspension by the client; toggle references; the disclaim-based
// finalized allocator.
#include "runtime.h"

#define HANDOFF_GC_UNSUPPORTED(name) \
  extern "C" void name() { handoff::compat::unsupported(#name); }

HANDOFF_GC_UNSUPPORTED(GC_clear_mark_bit)
HANDOFF_GC_UNSUPPORTED(GC_enumerate_reachable_objects_inner)
HANDOFF_GC_UNSUPPORTED(GC_finalized_malloc)
HANDOFF_GC_UNSUPPORTED(GC_init_finalized_malloc)
HANDOFF_GC_UNSUPPORTED(GC_is_marked)
HANDOFF_GC_UNSUPPORTED(GC_is_thread_suspended)
HANDOFF_GC_UNSUPPORTED(GC_is_tmp_root)
HANDOFF_GC_UNSUPPORTED(GC_print_free_list)
HANDOFF_GC_UNSUPPORTED(GC_push_conditional)
HANDOFF_GC_UNSUPPORTED(GC_push_finalizer_structures)
HANDOFF_GC_UNSUPPORTED(GC_register_describe_type_fn)
HANDOFF_GC_UNSUPPORTED(GC_register_disclaim_proc)
HANDOFF_GC_UNSUPPORTED(GC_resume_thread)
HANDOFF_GC_UNSUPPORTED(GC_set_mark_bit)
HANDOFF_GC_UNSUPPORTED(GC_start_world_external)
HANDOFF_GC_UNSUPPORTED(GC_stop_world_external)
HANDOFF_GC_UNSUPPORTED(GC_suspend_thread)
HANDOFF_GC_UNSUPPORTED(GC_toggleref_add)
