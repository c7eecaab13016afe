// Finalization and disappearing links. Not built yet: registration is
// refused with the "not supported" abort (unsupported.cpp), so nothing is
// ever queued and the queries below answer truthfully.
#include "exported.h"

extern "C" {
int GC_should_invoke_finalizers(void) { return 0; }
int GC_invoke_finalizers(void) { return 0; }
}
