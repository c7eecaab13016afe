// Compiled only so that check_barrier.sh can disassemble the write barrier
// exactly as a user's -O2/-O3 code inlines a Member assignment.
#include <handoff/traced.h>

struct ProbeNode {
  handoff::Member<ProbeNode> next;
  void trace(handoff::Visitor& v) const { v.trace(next); }
};

extern "C" void handoff_probe_member_store(ProbeNode* owner, ProbeNode* target) { owner->next = target; }

extern "C" void handoff_probe_write_barrier(const void* slot) { handoff::write_barrier(slot); }
