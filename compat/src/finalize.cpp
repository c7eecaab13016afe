// Finalization and disappearing links, as libgc defines them.
//
// Tables (malloc memory, never scanned, so an entry keeps nothing alive):
//   finalizers   object -> (procedure, client data, mode)
//   short links  link -> object   (GC_general_register_disappearing_link)
//   long links   link -> object   (GC_register_long_link)
//   queue        objects found unreachable, waiting for their finalizer;
//                roots until it has run (root scanner, runtime.cpp)
//
// At every collection, after marking (post_mark, a Heap post-mark hook,
// world stopped), in libgc's order:
//   1. short links to unmarked objects are cleared
//   2. ordered finalization: every unmarked object with an ordered
//      (GC_register_finalizer) or ignore-self finalizer has what it points to
//      marked, not itself; those still unmarked afterwards are not reachable
//      from another unmarked finalizable object, and are queued. An object
//      reachable from one that is queued waits for a later collection, so
//      finalizers run in reachability order (a cycle is never finalized).
//      Unmarked no-order objects are queued regardless.
//   3. queued objects are marked, with everything they reach, so that their
//      finalizers see intact objects
//   4. long links to objects still unmarked are cleared
//   5. entries whose link lies inside an unmarked heap object are dropped
// Finalizers run on a mutator outside the collection: at the next
// allocation or GC_gcollect, or when the client calls GC_invoke_finalizers
// (GC_finalize_on_demand; the notifier is called instead).
#include "exported.h"
#include "runtime.h"

#include <cstdio>
#include <deque>
#include <vector>
#include <mutex>
#include <unordered_map>

namespace handoff::compat {
namespace {

enum class Order { kOrdered, kIgnoreSelf, kNoOrder };

struct Finalizer {
  GC_finalization_proc proc;
  void* data;
  Order order;
};

struct Queued {
  void* object;
  GC_finalization_proc proc;
  void* data;
};

struct Tables {
  std::mutex mutex;
  std::unordered_map<void*, Finalizer> finalizers;
  std::unordered_map<void**, void*> short_links;
  std::unordered_map<void**, void*> long_links;
  std::deque<Queued> queue;
};

Tables& tables() {
  static Tables* t = new Tables;  // never destroyed
  return *t;
}

std::atomic<std::size_t> queued_count{0};
// Set by a collection that queued finalizers, taken by the one mutator that
// calls GC_finalizer_notifier for it: libgc notifies once per collection,
// and a notifier that allocates (guile's does) must not be called again
// from its own allocation while the queue is still full.
std::atomic<bool> notify_pending{false};
thread_local bool running_finalizers = false;

// Marks what `object` points to, except pointers into itself (ignore-self).
void mark_contents(Heap::MarkPhase& phase, void* object, bool ignore_self) {
  auto* begin = static_cast<void**>(object);
  auto* end = reinterpret_cast<void**>(static_cast<char*>(object) + (capacity_of(object) & ~(sizeof(void*) - 1)));
  if (!ignore_self) {
    phase.mark_conservative(begin, end);
    return;
  }
  for (void** p = begin; p < end; ++p) {
    const char* word = static_cast<const char*>(*p);
    if (word >= static_cast<char*>(object) && word < reinterpret_cast<char*>(end)) continue;
    phase.mark_conservative(p, p + 1);
  }
}

void clear_unmarked(Heap::MarkPhase& phase, std::unordered_map<void**, void*>& links) {
  std::erase_if(links, [&](const auto& entry) {
    if (phase.is_marked(entry.second)) return false;
    *entry.first = nullptr;
    return true;
  });
}

void drop_dead_links(Heap& heap, Heap::MarkPhase& phase, std::unordered_map<void**, void*>& links) {
  std::erase_if(links, [&](const auto& entry) {
    const void* container = heap.find_object(entry.first);
    return container != nullptr && !phase.is_marked(container);
  });
}

void post_mark(Heap::MarkPhase& phase, void*) {
  Tables& t = tables();
  std::lock_guard lock(t.mutex);
  clear_unmarked(phase, t.short_links);
  std::vector<void*> candidates;
  for (const auto& [object, f] : t.finalizers) {
    if (!phase.is_marked(object)) candidates.push_back(object);
  }
  for (void* object : candidates) {
    const Finalizer& f = t.finalizers.at(object);
    if (f.order != Order::kNoOrder) mark_contents(phase, object, f.order == Order::kIgnoreSelf);
  }
  std::size_t queued = 0;
  for (void* object : candidates) {
    auto it = t.finalizers.find(object);
    if (it->second.order != Order::kNoOrder && phase.is_marked(object)) continue;  // reachable from another
    t.queue.push_back({object, it->second.proc, it->second.data});
    t.finalizers.erase(it);
    ++queued;
  }
  for (auto it = t.queue.end() - static_cast<std::ptrdiff_t>(queued); it != t.queue.end(); ++it) {
    phase.mark(it->object);
  }
  clear_unmarked(phase, t.long_links);
  drop_dead_links(*heap_if_created(), phase, t.short_links);
  drop_dead_links(*heap_if_created(), phase, t.long_links);
  queued_count.store(t.queue.size(), std::memory_order_relaxed);
  if (queued != 0) notify_pending.store(true, std::memory_order_relaxed);
}

int register_link(std::unordered_map<void**, void*>& links, void** link, const void* object) {
  if (link == nullptr || (reinterpret_cast<std::uintptr_t>(link) & (sizeof(void*) - 1)) != 0) {
    fatal("GC_general_register_disappearing_link: the link is NULL or not aligned (handoff's libgc)");
  }
  if (GC_base(const_cast<void*>(object)) == nullptr) {
    fatal("GC_general_register_disappearing_link: the object is not in the GC heap (handoff's libgc)");
  }
  Tables& t = tables();
  std::lock_guard lock(t.mutex);
  // A link registered again now disappears with the new object (libgc
  // retargets it): keeping the old one would leave the link dangling once
  // the new object dies (guile reuses weak-vector and weak-set slots so).
  auto [it, inserted] = links.try_emplace(link, const_cast<void*>(object));
  if (inserted) return GC_SUCCESS;
  it->second = const_cast<void*>(object);
  return GC_DUPLICATE;
}

int unregister_link(std::unordered_map<void**, void*>& links, void** link) {
  Tables& t = tables();
  std::lock_guard lock(t.mutex);
  return links.erase(link) != 0 ? 1 : 0;
}

int move_link(std::unordered_map<void**, void*>& links, void** link, void** new_link) {
  if (new_link == nullptr || (reinterpret_cast<std::uintptr_t>(new_link) & (sizeof(void*) - 1)) != 0) {
    fatal("GC_move_disappearing_link: the new link is NULL or not aligned (handoff's libgc)");
  }
  Tables& t = tables();
  std::lock_guard lock(t.mutex);
  auto it = links.find(link);
  if (it == links.end()) return GC_NOT_FOUND;
  if (link == new_link) return GC_SUCCESS;
  if (links.contains(new_link)) return GC_DUPLICATE;
  void* object = it->second;
  links.erase(it);
  links.emplace(new_link, object);
  return GC_SUCCESS;
}

void register_finalizer(void* object, GC_finalization_proc proc, void* data, GC_finalization_proc* old_proc,
                        void** old_data, Order order) {
  if (object != nullptr && GC_base(object) != object) {
    fatal("GC_register_finalizer: the object is not the start of a GC object (handoff's libgc)");
  }
  Tables& t = tables();
  std::lock_guard lock(t.mutex);
  auto it = t.finalizers.find(object);
  if (old_proc != nullptr) *old_proc = it == t.finalizers.end() ? nullptr : it->second.proc;
  if (old_data != nullptr) *old_data = it == t.finalizers.end() ? nullptr : it->second.data;
  if (proc == nullptr) {
    if (it != t.finalizers.end()) t.finalizers.erase(it);
    return;
  }
  t.finalizers[object] = {proc, data, order};
}

}  // namespace

void finalization_post_mark(Heap::MarkPhase& phase, void* context) { post_mark(phase, context); }

// Also every finalizer's client data, conservatively (it may be anything):
// libgc's finalization table is a root, so what the data points to lives
// as long as the registration (guile keeps its guardian lists there).
void scan_finalizer_queue(Visitor& visitor) {
  Tables& t = tables();
  std::lock_guard lock(t.mutex);
  for (const Queued& q : t.queue) {
    visitor.trace_raw(q.object);
    visitor.trace_conservative(&q.data, &q.data + 1);
  }
  for (const auto& entry : t.finalizers) visitor.trace_conservative(&entry.second.data, &entry.second.data + 1);
}

bool finalizers_pending() noexcept { return queued_count.load(std::memory_order_relaxed) != 0; }

int invoke_finalizers() {
  if (running_finalizers) return 0;  // a finalizer's own allocation
  running_finalizers = true;
  int ran = 0;
  for (;;) {
    Queued q;
    {
      Tables& t = tables();
      std::lock_guard lock(t.mutex);
      if (t.queue.empty()) break;
      q = t.queue.front();
      t.queue.pop_front();
      queued_count.store(t.queue.size(), std::memory_order_relaxed);
    }
    // The object is no root any more, but this frame holds it (the stack is
    // scanned) while its finalizer runs.
    volatile void* keep = q.object;
    q.proc(q.object, q.data);
    (void)keep;
    ++ran;
  }
  running_finalizers = false;
  return ran;
}

// After a collection, on the allocating or collecting thread.
void after_collection() {
  if (!finalizers_pending() || running_finalizers) return;
  if (GC_finalize_on_demand != 0) {
    if (!notify_pending.exchange(false, std::memory_order_relaxed)) return;
    if (GC_finalizer_notifier_proc notify = GC_finalizer_notifier) notify();
    return;
  }
  invoke_finalizers();
}

}  // namespace handoff::compat

using namespace handoff::compat;

extern "C" {

void GC_register_finalizer(void* object, GC_finalization_proc proc, void* data, GC_finalization_proc* old_proc,
                           void** old_data) {
  register_finalizer(object, proc, data, old_proc, old_data, Order::kOrdered);
}
void GC_register_finalizer_ignore_self(void* object, GC_finalization_proc proc, void* data,
                                       GC_finalization_proc* old_proc, void** old_data) {
  register_finalizer(object, proc, data, old_proc, old_data, Order::kIgnoreSelf);
}
void GC_register_finalizer_no_order(void* object, GC_finalization_proc proc, void* data,
                                    GC_finalization_proc* old_proc, void** old_data) {
  register_finalizer(object, proc, data, old_proc, old_data, Order::kNoOrder);
}
// "Unreachable" finalization differs from ordered finalization only for
// cycles (libgc finalizes an unreachable cycle's members); here it is ordered.
void GC_register_finalizer_unreachable(void* object, GC_finalization_proc proc, void* data,
                                       GC_finalization_proc* old_proc, void** old_data) {
  register_finalizer(object, proc, data, old_proc, old_data, Order::kOrdered);
}
void GC_debug_register_finalizer(void* object, GC_finalization_proc proc, void* data, GC_finalization_proc* old_proc,
                                 void** old_data) {
  GC_register_finalizer(object, proc, data, old_proc, old_data);
}
void GC_debug_register_finalizer_ignore_self(void* object, GC_finalization_proc proc, void* data,
                                             GC_finalization_proc* old_proc, void** old_data) {
  GC_register_finalizer_ignore_self(object, proc, data, old_proc, old_data);
}
void GC_debug_register_finalizer_no_order(void* object, GC_finalization_proc proc, void* data,
                                          GC_finalization_proc* old_proc, void** old_data) {
  GC_register_finalizer_no_order(object, proc, data, old_proc, old_data);
}
void GC_debug_register_finalizer_unreachable(void* object, GC_finalization_proc proc, void* data,
                                             GC_finalization_proc* old_proc, void** old_data) {
  GC_register_finalizer_unreachable(object, proc, data, old_proc, old_data);
}

int GC_should_invoke_finalizers(void) { return finalizers_pending() ? 1 : 0; }
int GC_invoke_finalizers(void) { return invoke_finalizers(); }

int GC_general_register_disappearing_link(void** link, const void* object) {
  return register_link(tables().short_links, link, object);
}
int GC_register_disappearing_link(void** link) {
  return GC_general_register_disappearing_link(link, GC_base(*link));
}
int GC_unregister_disappearing_link(void** link) { return unregister_link(tables().short_links, link); }
int GC_move_disappearing_link(void** link, void** new_link) { return move_link(tables().short_links, link, new_link); }
int GC_register_long_link(void** link, const void* object) { return register_link(tables().long_links, link, object); }
int GC_unregister_long_link(void** link) { return unregister_link(tables().long_links, link); }
int GC_move_long_link(void** link, void** new_link) { return move_link(tables().long_links, link, new_link); }

void GC_finalize_all(void) {
  {
    Tables& t = tables();
    std::lock_guard lock(t.mutex);
    for (const auto& [object, f] : t.finalizers) t.queue.push_back({object, f.proc, f.data});
    t.finalizers.clear();
    queued_count.store(t.queue.size(), std::memory_order_relaxed);
  }
  invoke_finalizers();
}

void GC_dump_finalization(void) {
  Tables& t = tables();
  std::lock_guard lock(t.mutex);
  std::printf("finalizers: %zu registered, %zu queued; disappearing links: %zu short, %zu long\n",
              t.finalizers.size(), t.queue.size(), t.short_links.size(), t.long_links.size());
}

}  // extern "C"
