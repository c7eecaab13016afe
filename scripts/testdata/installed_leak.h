// Negative control of structure.layers (check 5): an installed header that
// includes an internal one.
#pragma once
#include <handoff/limbo.h>
