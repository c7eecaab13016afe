// Root and Weak handles: registration in the heap's handle table, checks of
// the pointers they are given, and orphaning when the heap goes first.
#include "embedder_access.h"

#include <cstdio>
#include <string>

namespace handoff::detail {
namespace {

std::string address(const void* p) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%p", p);
  return buffer;
}

const char* handle_name(HandleBase::Kind kind) { return kind == HandleBase::Kind::kRoot ? "Root" : "Weak"; }

}  // namespace

void HandleTable::link(HandleBase& handle) {
  std::lock_guard lock(mutex_);
  handle.prev_ = nullptr;
  handle.next_ = head_;
  if (head_ != nullptr) head_->prev_ = &handle;
  head_ = &handle;
}

void HandleTable::unlink(HandleBase& handle) noexcept {
  std::lock_guard lock(mutex_);
  if (handle.prev_ != nullptr) {
    handle.prev_->next_ = handle.next_;
  } else {
    head_ = handle.next_;
  }
  if (handle.next_ != nullptr) handle.next_->prev_ = handle.prev_;
  handle.prev_ = handle.next_ = nullptr;
}

void HandleTable::orphan_all() noexcept {
  std::lock_guard lock(mutex_);
  for (HandleBase* h = head_; h != nullptr;) {
    HandleBase* next = h->next_;
    h->orphaned_ = true;
    h->registered_ = false;
    h->heap_ = nullptr;
    h->object_.store(nullptr, std::memory_order_relaxed);
    h->prev_ = h->next_ = nullptr;
    h = next;
  }
  head_ = nullptr;
}

std::size_t HandleTable::count(HandleBase::Kind kind) const {
  std::lock_guard lock(mutex_);
  std::size_t n = 0;
  for (const HandleBase* h = head_; h != nullptr; h = h->next_) n += h->kind_ == kind ? 1 : 0;
  return n;
}

void HandleBase::check_object(Heap& heap, Kind kind, const void* object) {
  EmbedderAccess::check_outside_destructor(std::string("created a ") + handle_name(kind));
  if (object != nullptr) EmbedderAccess::check_live_object(heap, object, handle_name(kind));
}

void EmbedderAccess::check_outside_destructor(const std::string& action) {
  if (tls_records.in_destructor > 0) {
    fatal_misuse("a destructor " + action + ": destructors run during sweeping and must not touch the heap");
  }
}

void EmbedderAccess::check_live_object(Heap& heap, const void* object, const char* what) {
  heap.record_own_cells(object);
  if (heap.is_heap_object(object)) return;
  const void* containing = heap.find_object(object);
  std::string why = containing != nullptr
                        ? "it points inside the object at " + address(containing) + ", not at its start"
                        : "it is not a live object of this heap (never allocated by it, or already freed)";
  throw Error(ErrorCode::kNotAHeapPointer, std::string(what) + " of " + address(object) + ": " + why);
}

void EmbedderAccess::check_heap_object(Heap& heap, const void* object, const char* what) {
  check_outside_destructor(std::string("used ") + what);
  check_live_object(heap, object, what);
}

void HandleBase::attach(Heap* heap, const void* object) {
  check_object(*heap, kind_, object);
  heap_ = heap;
  object_.store(disguise(kind_, object), std::memory_order_relaxed);
  heap->internals_->handles.link(*this);
  registered_ = true;
  orphaned_ = false;
}

void HandleBase::detach() noexcept {
  if (!registered_) return;
  heap_->internals_->handles.unlink(*this);
  registered_ = false;
  object_.store(nullptr, std::memory_order_relaxed);
}

void HandleBase::reset_object(const void* object) {
  if (orphaned_) object_checked("Root::set");
  if (!registered_) {
    throw Error(ErrorCode::kMisuse, std::string(handle_name(kind_)) +
                                        "::set on a handle that belongs to no heap; construct it with a heap");
  }
  check_object(*heap_, kind_, object);
  object_.store(disguise(kind_, object), std::memory_order_relaxed);
}

void HandleBase::release_checked() {
  if (orphaned_) object_checked("Root::release");
  if (!registered_) {
    throw Error(ErrorCode::kMisuse, std::string(handle_name(kind_)) +
                                        "::release: this handle was already released (or never held anything)");
  }
  detach();
}

const void* HandleBase::object_checked(const char* what) const {
  if (orphaned_) {
    throw Error(ErrorCode::kMisuse, std::string(what) + ": the heap this handle belonged to was destroyed");
  }
  if (kind_ == Kind::kWeak && registered_ && !heap_->current_thread_attached()) {
    throw Error(ErrorCode::kMisuse, std::string(what) +
                                        " from a thread that is not attached to this heap: a collection could clear "
                                        "the handle halfway through the read; attach the thread first");
  }
  return disguise(kind_, object_.load(std::memory_order_relaxed));
}

}  // namespace handoff::detail
