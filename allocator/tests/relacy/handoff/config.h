// The Relacy harness's stand-in for the generated <handoff/config.h>: the
// harness compiles the epoch sources itself, with HANDOFF_TEST_HOOKS on and
// without linking any handoff library, so there is no build configuration
// to check against.
#pragma once

#define HANDOFF_CONFIG_TEST_HOOKS 1
