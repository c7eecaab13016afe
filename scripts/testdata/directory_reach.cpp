// A planted reach into a directory (the negative control of
// check_layers.py's collector checks): a collector source that includes
// the internal directory header, as collection.cpp once did.
#include <handoff/directory.h>
std::size_t slots(handoff::Allocator& heap) { return handoff::directory_of(heap, 0).block_slots(); }
