// A planted reach into blocks (the negative control of check_layers.py's
// collector checks): a collector source that includes the block header and
// names MarkedBlock in code. A comment that says MarkedBlock is fine.
#include <handoff/marked_block.h>
bool marked(const void* cell) { return handoff::MarkedBlock::of(cell)->is_marked(cell, 1); }
