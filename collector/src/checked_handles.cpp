// Checked handles (checked_handle.h): the process-wide registry of live
// heaps, each heap's slot table, and the collection's part.
//
// Call tree:
//   CheckedHandle(heap, object)   -> make_checked_handle: check the object,
//                                    take a free slot (slot table mutex)
//   CheckedHandle::get / release  -> resolve / release: registry mutex, then
//                                    the heap's slot table mutex, held
//                                    together so the heap cannot be
//                                    destroyed between the two
//   Heap::Heap / ~Heap            -> register_heap / unregister_heap
//   collection, mark roots        -> scan_checked_handles (a root scanner)
//   collection, weak phase        -> clear_dead_checked_handles
// Lock order: registry, then slot table; the collection takes only the
// slot table (world stopped; embedder_state.h says why no stopped thread
// holds it).
#include "embedder_access.h"
#include "marker.h"

#include <string>
#include <unordered_map>

namespace handoff::detail {
namespace {

struct Registry {
  std::mutex mutex;
  std::uint64_t next_serial = 1;
  std::unordered_map<std::uint64_t, HeapInternals*> heaps;
};

Registry& registry() {
  static Registry* r = new Registry;  // never destroyed: handles may be used during static destruction
  return *r;
}

std::string describe(const CheckedHandleId& id) {
  return "(heap " + std::to_string(id.heap) + ", slot " + std::to_string(id.index) + ", generation " +
         std::to_string(id.generation) + ")";
}

// The slot `id` names, still in use at `id`'s generation; throws otherwise.
// Both mutexes held.
CheckedHandleTable::Slot& live_slot(CheckedHandleTable& table, const CheckedHandleId& id, const char* what) {
  if (id.index >= table.slots.size()) {
    throw Error(ErrorCode::kStaleHandle, std::string(what) + ": handle " + describe(id) +
                                             " names no slot of its heap (a forged or corrupted handle)");
  }
  CheckedHandleTable::Slot& slot = table.slots[id.index];
  if (slot.in_use && slot.generation == id.generation) return slot;
  const bool next = slot.generation == id.generation + 1;
  const char* why = !next ? "its slot has been freed and reused since"
                    : slot.freed == CheckedHandleTable::Freed::kCollected
                        ? "its object was found unreachable and collected"
                        : "it was released";
  throw Error(ErrorCode::kStaleHandle, std::string(what) + ": handle " + describe(id) + " is stale: " + why);
}

template <class F>
auto with_live_heap(const CheckedHandleId& id, const char* what, F&& f) {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  const auto it = r.heaps.find(id.heap);
  if (it == r.heaps.end()) {
    throw Error(ErrorCode::kHeapDestroyed,
                std::string(what) + ": handle " + describe(id) + " belongs to a heap that was destroyed");
  }
  return f(*it->second);
}

void free_slot(CheckedHandleTable& table, std::uint32_t index, CheckedHandleTable::Freed why) {
  CheckedHandleTable::Slot& slot = table.slots[index];
  slot.object = nullptr;
  slot.in_use = false;
  slot.freed = why;
  if (++slot.generation == 0) slot.generation = 1;
  table.free_slots.push_back(index);
  --table.in_use;
}

}  // namespace

void register_heap(HeapInternals& heap) {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  heap.serial = r.next_serial++;
  r.heaps.emplace(heap.serial, &heap);
}

void unregister_heap(HeapInternals& heap) noexcept {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  r.heaps.erase(heap.serial);
}

CheckedHandleId make_checked_handle(Heap& heap, const void* object, HandleStrength strength) {
  if (object == nullptr) return {};
  EmbedderAccess::check_heap_object(heap, object, "CheckedHandle");
  HeapInternals& in = EmbedderAccess::internals(heap);
  CheckedHandleTable& table = in.checked_handles;
  std::lock_guard lock(table.mutex);
  std::uint32_t index;
  if (!table.free_slots.empty()) {
    index = table.free_slots.back();
    table.free_slots.pop_back();
  } else {
    index = static_cast<std::uint32_t>(table.slots.size());
    table.slots.emplace_back();
  }
  CheckedHandleTable::Slot& slot = table.slots[index];
  slot.object = object;
  slot.strength = strength;
  slot.in_use = true;
  ++table.in_use;
  return {in.serial, index, slot.generation};
}

const void* resolve_checked_handle(const CheckedHandleId& id, const char* what) {
  if (id.heap == 0) return nullptr;
  return with_live_heap(id, what, [&](HeapInternals& in) {
    EmbedderAccess::check_attached(in.heap, what);
    std::lock_guard lock(in.checked_handles.mutex);
    return live_slot(in.checked_handles, id, what).object;
  });
}

void release_checked_handle(const CheckedHandleId& id) {
  const char* what = "CheckedHandle::release";
  if (id.heap == 0) throw Error(ErrorCode::kMisuse, std::string(what) + ": the handle is null");
  with_live_heap(id, what, [&](HeapInternals& in) {
    std::lock_guard lock(in.checked_handles.mutex);
    live_slot(in.checked_handles, id, what);
    free_slot(in.checked_handles, id.index, CheckedHandleTable::Freed::kReleased);
  });
}

void scan_checked_handles(Visitor& visitor, void* heap_internals) {
  CheckedHandleTable& table = static_cast<HeapInternals*>(heap_internals)->checked_handles;
  std::lock_guard lock(table.mutex);
  for (const CheckedHandleTable::Slot& slot : table.slots) {
    if (slot.in_use && slot.strength == HandleStrength::kStrong) visitor.trace_raw(slot.object);
  }
}

std::uint64_t clear_dead_checked_handles(HeapInternals& heap) {
  CheckedHandleTable& table = heap.checked_handles;
  std::lock_guard lock(table.mutex);
  std::uint64_t cleared = 0;
  for (std::uint32_t i = 0; i < table.slots.size(); ++i) {
    const CheckedHandleTable::Slot& slot = table.slots[i];
    if (!slot.in_use || slot.strength != HandleStrength::kWeak || heap.is_marked(slot.object)) continue;
    free_slot(table, i, CheckedHandleTable::Freed::kCollected);
    ++cleared;
  }
  table.cleared += cleared;
  return cleared;
}

}  // namespace handoff::detail
