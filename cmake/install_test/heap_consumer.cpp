// A program outside the project, built against the installed collector
// (static or shared). It checks what a shared build could get wrong: the
// allocation fast path inlined here finds the thread record the library
// set up (one tls_records), and the write barrier inlined here reads the
// library's block_range_map (one definition), so an old object's store of a
// new one keeps it alive across an eden collection.
#include <handoff/heap.h>

#include <cstdint>
#include <cstdio>

struct Node {
  handoff::Member<Node> next;
  std::uint64_t value = 0;
  void trace(handoff::Visitor& v) const { v.trace(next); }
};

int main() {
  handoff::Heap heap;
  int failures = 0;
  {
    handoff::ThreadScope attached(heap);
    handoff::Root<Node> old(heap, heap.make<Node>());
    heap.collect();  // `old` is old now
    if (!handoff::detail::in_block_range(reinterpret_cast<std::uintptr_t>(old.get()))) {
      std::printf("consumer: the inline barrier does not see the library's block map\n");
      ++failures;
    }
    for (int round = 0; round < 4; ++round) {
      Node* young = heap.make<Node>();
      young->value = 42 + static_cast<std::uint64_t>(round);
      old->next = young;  // the barrier marks the card
      young = nullptr;
      heap.collect(handoff::CollectionScope::kEden);
      if (old->next.get() == nullptr || !heap.is_heap_object(old->next.get()) ||
          old->next->value != 42 + static_cast<std::uint64_t>(round)) {
        std::printf("consumer: an object stored into an old one was lost by an eden collection\n");
        ++failures;
      }
    }
  }
  std::printf("consumer: heap %s (%s)\n", failures == 0 ? "ok" : "FAILED", HANDOFF_VERSION_STRING);
  return failures == 0 ? 0 : 1;
}
