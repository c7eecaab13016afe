// The remembered set of an eden collection: what must be traced, besides
// the roots, so that sticky marks lose nothing (invariant 8).
//
// Call tree (world stopped, sweeper paused, heap mutex held):
//   HeapInternals::run_collection
//     eden: Marker::trace_remembered   before any root is marked
//             cards      every marked cell overlapping a dirty card of a
//                        block marked in this version; the cards are cleared
//             large      every marked large object with a trace function
//                        (large objects have no cards)
//             constructing  every old object a collection found under
//                        construction (its constructor may have stored new
//                        objects into Members since, without the barrier)
//     full: forget_remembered          clears every card; the list of
//                                      objects under construction restarts
//
// Why this is enough. Call an object old when it is marked at the start of
// an eden collection. Claim: when the eden collection's roots are marked,
// every reference from an old object to an unmarked object is a field of an
// object traced here. After the previous collection (eden or full) every
// marked object's fields pointed at marked objects, since marking is a
// closure and cards of that collection were traced and cleared. Since then,
// a field of an old object can change only by (a) Member assignment, which
// set the card covering the field, so the object is traced here as a marked
// cell overlapping a dirty card, or as a large object, which is always
// traced; (b) a constructor still running at that collection, whose object
// is on the `constructing` list; or (c) a raw store the user pairs with
// write_barrier(), which is (a). Old objects that died are traced too: a
// conservative root may find them, and then their fields must point at
// intact cells (invariant 7), which this tracing also guarantees.
//
// The old objects are pushed onto the mark stacks before any root is marked
// and before anything is traced (no mark is set meanwhile, on any worker),
// so "marked" here means "old"; the drain traces them like every other
// object. When parallel, the directories, the large objects and the list
// of objects under construction are tasks spread over the workers.
#include "marker.h"

#include <handoff/large_object_space.h>
#include <handoff/mark_services.h>

#include <algorithm>

namespace handoff::detail {

void Marker::trace_remembered() {
  std::vector<const void*> constructing;
  constructing.swap(heap_.constructing);
  // The drain puts each back on the list if it is still under construction.
  // The tasks may run later (queue_tasks), so they own the list.
  queue_tasks(kNumSizeClasses + 2, [constructing = std::move(constructing)](Marker& worker, std::size_t task) {
    if (task < kNumSizeClasses) {
      worker.remember_directory(task);
    } else if (task == kNumSizeClasses) {
      worker.remember_large();
    } else {
      for (const void* object : constructing) {
        ++worker.remembered_objects_;
        worker.stack_.push_back(object);
      }
    }
  });
}

void Marker::remember_large() {
  for (const auto& [cell, size] : large_) {
    if (!LargeObjectSpace::is_marked(reinterpret_cast<const void*>(cell), version_)) continue;
    const void* object = object_of(reinterpret_cast<void*>(cell));
    const std::uintptr_t header = header_of(object).load(std::memory_order_relaxed);
    const auto* type = reinterpret_cast<const TypeInfo*>(header & ~kInConstruction);
    if ((header & kInConstruction) == 0 && type != nullptr && type->trace == nullptr) continue;  // a leaf
    ++remembered_objects_;
    stack_.push_back(object);
  }
}

void Marker::remember_directory(std::size_t size_class) {
  for_each_block_with_dirty_cards(heap_.allocator, size_class, [&](MarkedBlock& block) {
#if defined(HANDOFF_TEST_HOOKS)
    if (heap_.hooks.drop_remembered) {
      block.clear_cards();
      return;
    }
#endif
    if (block.mark_version() == version_) remember_cards_of(block);
    block.clear_cards();
  });
}

// Pushes each marked cell of `block` that overlaps a dirty card, once.
void Marker::remember_cards_of(MarkedBlock& block) {
  char* const base = reinterpret_cast<char*>(&block);
  const char* last_pushed = nullptr;
  for (std::size_t card = 0; card < kCardsPerBlock; ++card) {
    if (!block.card_dirty(card)) continue;
    ++remembered_cards_;
    const char* from = std::max(base + card * kCardSize, block.begin());
    const char* to = std::min(base + (card + 1) * kCardSize, block.end());
    if (from >= to) continue;
    std::size_t index = static_cast<std::size_t>(from - block.begin()) / block.cell_size();
    for (const char* cell = block.cell_at(index); cell < to; cell += block.cell_size()) {
      if (cell <= last_pushed || !block.is_live_cell(cell) || !block.is_marked(cell, version_)) continue;
      last_pushed = cell;
      ++remembered_objects_;
      stack_.push_back(object_of(const_cast<char*>(cell)));
    }
  }
}

void forget_remembered(HeapInternals& heap) {
  for (std::size_t cls = 0; cls < kNumSizeClasses; ++cls) {
    for_each_block_with_dirty_cards(heap.allocator, cls, [](MarkedBlock& block) { block.clear_cards(); });
  }
  heap.constructing.clear();
}

}  // namespace handoff::detail
