// Every libgc 8.2 function that handoff's libgc does not implement: a client
// that calls one stops with "not supported by handoff's libgc: NAME" instead
// of failing to load (a missing symbol) or misbehaving silently. The
// parameters are not declared: each stub aborts before it would read them.
//
// Left out on purpose: custom object kinds and mark procedures (gc_mark.h),
// which need a mark-procedure interface the collector does not offer;
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
HANDOFF_GC_UNSUPPORTED(GC_mark_and_push)
HANDOFF_GC_UNSUPPORTED(GC_new_free_list)
HANDOFF_GC_UNSUPPORTED(GC_new_free_list_inner)
HANDOFF_GC_UNSUPPORTED(GC_new_kind)
HANDOFF_GC_UNSUPPORTED(GC_new_kind_inner)
HANDOFF_GC_UNSUPPORTED(GC_new_proc)
HANDOFF_GC_UNSUPPORTED(GC_new_proc_inner)
HANDOFF_GC_UNSUPPORTED(GC_print_free_list)
HANDOFF_GC_UNSUPPORTED(GC_push_all)
HANDOFF_GC_UNSUPPORTED(GC_push_all_eager)
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
