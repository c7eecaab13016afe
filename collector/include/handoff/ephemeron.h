// Ephemeron tables: WeakMap semantics for embedders.
//
//   auto* map = heap.make<handoff::EphemeronMap<Script, Context>>(heap);
//   map->set(script, context);   // context lives while script lives
//   Context* c = map->get(script);
//
// An entry (key, value) keeps its value alive only while its key is
// reachable some other way: the table itself does not keep keys alive, and
// it keeps a value alive only through its key. A value may refer to its own
// key (or to the key of another entry) without keeping it alive, which is
// what a strong handle plus a weak callback cannot express: the cycle
// key -> value -> key then runs through an edge the collector cannot see
// and leaks (README, "Embedding handoff in a runtime").
//
// Marking finds tables as it traces them, then runs a fixpoint (the mark
// phase in collection.cpp): drain the mark stack; for each entry whose key
// is marked and whose value is not, mark the value; repeat until a round
// marks nothing. Entries whose key was not marked are dropped at the end of
// the collection, before any sweep can reuse the key's cell, as weak
// references are cleared. papers/collector.md, "Ephemerons", gives the
// argument for eden collections and the cost.
//
// Rules: the map is a heap object (make it with Heap::make) and is used
// from threads attached to its heap, one at a time, like any C++ value.
// Keys and values must be starts of live objects of the same heap
// (Error(kNotAHeapPointer) otherwise); a key is compared by address.
// for_each defers collection (DeferGC) while it runs; its callback must not
// change the map.
#pragma once

#include <handoff/heap.h>
#include <handoff/traced.h>

#include <cstddef>
#include <cstdint>
#include <unordered_map>

namespace handoff {

namespace detail {

// The untyped part of an EphemeronMap, which the marker sees.
class EphemeronTable {
 public:
  using Entries = std::unordered_map<const void*, const void*>;

  explicit EphemeronTable(Heap& heap) noexcept : heap_(&heap) {}
  EphemeronTable(const EphemeronTable&) = delete;
  EphemeronTable& operator=(const EphemeronTable&) = delete;

  void set(const void* key, const void* value);
  const void* get(const void* key) const;
  bool erase(const void* key);
  std::size_t size() const noexcept { return entries_.size(); }
  template <class F>
  void for_each(F&& f) const;

  // The collector's view (world stopped).
  const Entries& entries() const noexcept { return entries_; }
  // Drops every entry whose key `is_live` rejects; returns how many.
  template <class Live>
  std::size_t drop_dead(Live&& is_live) {
    return std::erase_if(entries_, [&](const auto& entry) { return !is_live(entry.first); });
  }

 private:
  void check_thread(const char* what) const;

  Heap* heap_;
  Entries entries_;
};

}  // namespace detail

template <class K, class V>
class EphemeronMap {
 public:
  explicit EphemeronMap(Heap& heap) noexcept : table_(heap) {}

  // Inserts or replaces the entry for `key`. The value may be nullptr.
  void set(K* key, V* value) { table_.set(key, value); }
  // The value of `key`'s entry, or nullptr when there is none.
  V* get(const K* key) const { return static_cast<V*>(const_cast<void*>(table_.get(key))); }
  bool contains(const K* key) const { return get(key) != nullptr || table_.entries().contains(key); }
  // Removes `key`'s entry; false when there was none.
  bool erase(const K* key) { return table_.erase(key); }
  std::size_t size() const noexcept { return table_.size(); }
  // f(K* key, V* value) for each entry; no collection runs meanwhile.
  template <class F>
  void for_each(F&& f) const {
    table_.for_each([&](const void* key, const void* value) {
      f(static_cast<K*>(const_cast<void*>(key)), static_cast<V*>(const_cast<void*>(value)));
    });
  }

  void trace(Visitor& visitor) const { visitor.trace_ephemerons(table_); }

 private:
  detail::EphemeronTable table_;
};

template <class F>
void detail::EphemeronTable::for_each(F&& f) const {
  check_thread("EphemeronMap::for_each");
  // A collection would drop entries (and invalidate the iteration) and
  // could free a key the callback holds only in a C++ container.
  DeferGC no_collection(*heap_);
  for (const auto& [key, value] : entries_) f(key, value);
}

}  // namespace handoff
