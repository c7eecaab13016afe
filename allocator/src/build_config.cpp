// The library's half of the configuration check in handoff/config.h: it
// defines only the symbol that names the setting it was compiled with.
#include <handoff/config.h>

#if defined(HANDOFF_TEST_HOOKS)
extern "C" const int handoff_library_built_with_HANDOFF_TEST_HOOKS = 1;
#else
extern "C" const int handoff_library_built_without_HANDOFF_TEST_HOOKS = 1;
#endif
