// A planted layer leak (the negative control of check_layers.py): an
// allocator file that includes a collector header and names the collector
// in code. A comment that says collector is fine.
#include <handoff/heap.h>
const char* layer = "collector";
