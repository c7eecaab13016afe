// Ephemeron tables: the mutator's operations and the marker's part of the
// fixpoint (ephemeron.h; the loop itself is drain_to_fixpoint in
// collection.cpp).
//
// Call tree (world stopped, sweeper paused, heap mutex held):
//   HeapInternals::run_collection
//     -> drain_to_fixpoint
//          Marker::drain -> trace_one -> EphemeronMap::trace
//            -> Marker::visit_ephemerons   key reached: mark the value now;
//                                          else (key, value) to the pending list
//          Marker::process_ephemerons       one round over the pending list
//     -> Marker::drop_dead_ephemerons      after the verifier, before the sweep
//
// Cost: every entry is looked at once when its table is traced; an entry
// whose key is reached later is looked at once more per round until then.
// A chain of n entries, each key the value of the one before, inserted in
// the worst order, takes n rounds and O(n^2) looks; the benchmark
// (bench/ephemeron_cost.cpp) measures the common shapes.
#include "embedder_access.h"
#include "mark_target.h"
#include "marker.h"

#include <handoff/large_object_space.h>
#include <handoff/mark_services.h>

#include <string>

namespace handoff::detail {

// ---- the mutator's side -------------------------------------------------

void EphemeronTable::check_thread(const char* what) const {
  EmbedderAccess::check_attached(*heap_, what);
}

void EphemeronTable::set(const void* key, const void* value) {
  check_thread("EphemeronMap::set");
  if (key == nullptr) throw Error(ErrorCode::kMisuse, "EphemeronMap::set: the key is nullptr");
  EmbedderAccess::check_heap_object(*heap_, key, "EphemeronMap key");
  if (value != nullptr) EmbedderAccess::check_heap_object(*heap_, value, "EphemeronMap value");
  entries_.insert_or_assign(key, value);
  // The entries live off the heap, so the card that an eden collection
  // reads is the table's own: an old table is retraced after any insertion
  // (remembered_set.cpp; the argument is in papers/collector.md).
  write_barrier(this);
}

const void* EphemeronTable::get(const void* key) const {
  check_thread("EphemeronMap::get");
  const auto it = entries_.find(key);
  return it == entries_.end() ? nullptr : it->second;
}

bool EphemeronTable::erase(const void* key) {
  check_thread("EphemeronMap::erase");
  return entries_.erase(key) != 0;
}

// ---- the marker's side ---------------------------------------------------

bool Marker::reached(const void* object) {
  if (mode_ == Mode::kVerify) return visited_.contains(object);
  const void* cell = cell_of(object);
  // Keys were checked when inserted, and an entry whose key died was
  // dropped, so the key is a live object of this heap.
  if (checked_target(cell) != nullptr) return is_marked_small_cell(cell, version_);
  return LargeObjectSpace::is_marked(cell, version_);
}

void Marker::visit_ephemerons(const EphemeronTable& table) {
#if defined(HANDOFF_TEST_HOOKS)
  if (mode_ == Mode::kMark && heap_.hooks.skip_ephemerons) return;
#endif
  // The collector may drop entries (world stopped): the table is only
  // const because trace() is.
  if (mode_ == Mode::kMark) ephemeron_tables_.push_back(const_cast<EphemeronTable*>(&table));
  // reached() reads marks: a key visited a moment ago must be marked by
  // now, and so must a value that is also a later entry's key (mark_now,
  // not the visit queue), as without the queue.
  flush_visits();
  for (const auto& [key, value] : table.entries()) {
    ++ephemeron_entries_;
    if (value == nullptr) continue;
    if (reached(key)) {
      mark_now(value);
    } else {
      ephemeron_pending_.emplace_back(key, value);
    }
  }
}

std::uint64_t Marker::ephemeron_entries() const noexcept { return sum(&Marker::ephemeron_entries_); }

bool Marker::process_ephemerons() {
  gather_ephemerons();
  // A key can only have become reached if something was marked since the
  // last round (the drain after finalizers are queued often marks nothing).
  const std::uint64_t marked = marked_objects();
  if (ephemeron_pending_.empty() || marked == marked_at_last_round_) return false;
  marked_at_last_round_ = marked;
  ++ephemeron_rounds_;
  bool pushed = false;
  std::size_t kept = 0;
  for (const auto& entry : ephemeron_pending_) {
    if (reached(entry.first)) {
      const std::size_t before = stack_.size();
      mark_now(entry.second);  // pushed now or never: the queue would hide it
      pushed = pushed || stack_.size() != before;
    } else {
      ephemeron_pending_[kept++] = entry;
    }
  }
  ephemeron_pending_.resize(kept);
  return pushed;
}

std::uint64_t Marker::drop_dead_ephemerons() {
  gather_ephemerons();
  std::uint64_t dropped = 0;
  for (EphemeronTable* table : ephemeron_tables_) {
    dropped += table->drop_dead([&](const void* key) { return heap_.is_marked(key); });
  }
  ephemeron_tables_.clear();
  ephemeron_pending_.clear();
  return dropped;
}

}  // namespace handoff::detail
