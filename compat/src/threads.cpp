// Thread registration, blocking regions and the pthread wrappers.
//
// A registered thread is a thread attached to the heap. libgc stops threads
// with signals wherever they are; handoff stops them cooperatively, at
// allocation slow paths and in the GC_* calls that poll, and a thread inside
// GC_do_blocking is parked (a collection proceeds without it, its stack
// scanned as it was when it parked). A registered thread that runs for long
// without calling the library therefore delays every collection until it
// does; it never makes one unsafe. Threads that allocate without having
// registered are registered implicitly and detached when they exit.
#include "exported.h"
#include "runtime.h"

#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>

#include <new>

namespace handoff::compat {
namespace {

// The parked scope of the innermost GC_do_blocking on this thread, if the
// thread is blocking now (GC_call_with_gc_active ends it for a while).
struct BlockingState {
  ParkedScope* parked = nullptr;
  alignas(ParkedScope) unsigned char storage[sizeof(ParkedScope)];
};
thread_local BlockingState blocking;

struct StartRecord {
  void* (*start)(void*);
  void* arg;
};

void* registered_start(void* raw) {
  StartRecord record = *static_cast<StartRecord*>(raw);
  delete static_cast<StartRecord*>(raw);
  attached_heap();
  void* result = record.start(record.arg);
  if (heap().current_thread_attached()) heap().detach_current_thread();
  return result;
}

}  // namespace
}  // namespace handoff::compat

using handoff::compat::blocking;
using handoff::compat::heap;

extern "C" {

void GC_allow_register_threads(void) { handoff::compat::attached_heap(); }

int GC_register_my_thread(const struct GC_stack_base*) {
  handoff::Heap& h = heap();
  if (h.current_thread_attached()) return GC_DUPLICATE;
  h.attach_current_thread();
  return GC_SUCCESS;
}

int GC_unregister_my_thread(void) {
  handoff::Heap* h = handoff::compat::heap_if_created();
  if (h == nullptr || !h->current_thread_attached()) return GC_NOT_FOUND;
  h->detach_current_thread();
  return GC_SUCCESS;
}

int GC_thread_is_registered(void) {
  handoff::Heap* h = handoff::compat::heap_if_created();
  return h != nullptr && h->current_thread_attached() ? 1 : 0;
}

void* GC_do_blocking(GC_fn_type fn, void* client_data) {
  handoff::Heap& h = handoff::compat::attached_heap();
  if (blocking.parked != nullptr) return fn(client_data);  // already blocking
  // Constructed here (inline) so that the registers this frame's callers
  // keep are captured in this frame, which stays live while fn runs.
  blocking.parked = new (blocking.storage) handoff::ParkedScope(h);
  void* result = fn(client_data);
  if (blocking.parked != nullptr) {
    blocking.parked->~ParkedScope();
    blocking.parked = nullptr;
  }
  return result;
}

void* GC_call_with_gc_active(GC_fn_type fn, void* client_data) {
  if (blocking.parked == nullptr) {
    handoff::compat::attached_heap();
    return fn(client_data);
  }
  handoff::Heap& h = heap();
  blocking.parked->~ParkedScope();
  blocking.parked = nullptr;
  void* result = fn(client_data);
  blocking.parked = new (blocking.storage) handoff::ParkedScope(h);
  return result;
}

int GC_get_stack_base(struct GC_stack_base* sb) {
  pthread_attr_t attr;
  void* address = nullptr;
  std::size_t size = 0;
  if (pthread_getattr_np(pthread_self(), &attr) != 0) return GC_UNIMPLEMENTED;
  pthread_attr_getstack(&attr, &address, &size);
  pthread_attr_destroy(&attr);
  sb->mem_base = static_cast<char*>(address) + size;
  return GC_SUCCESS;
}

void* GC_call_with_stack_base(GC_stack_base_func fn, void* arg) {
  struct GC_stack_base sb;
  sb.mem_base = __builtin_frame_address(0);
  return fn(&sb, arg);
}

void* GC_get_my_stackbottom(struct GC_stack_base* sb) {
  GC_get_stack_base(sb);
  return reinterpret_cast<void*>(pthread_self());
}

// handoff scans each thread's whole pthread stack; a coroutine's own stack
// bottom cannot be set.
void GC_set_stackbottom(void*, const struct GC_stack_base*) { handoff::compat::unsupported("GC_set_stackbottom"); }
void GC_register_altstack(void*, GC_word, void*, GC_word) {}

int GC_pthread_create(pthread_t* thread, const pthread_attr_t* attr, void* (*start)(void*), void* arg) {
  handoff::compat::attached_heap();
  auto* record = new handoff::compat::StartRecord{start, arg};
  const int rc = pthread_create(thread, attr, &handoff::compat::registered_start, record);
  if (rc != 0) delete record;
  return rc;
}

int GC_pthread_join(pthread_t thread, void** result) {
  struct Join {
    pthread_t thread;
    void** result;
    int rc;
  } join{thread, result, 0};
  // Joining blocks: park meanwhile, so collections go on.
  GC_do_blocking(
      [](void* data) -> void* {
        auto* j = static_cast<Join*>(data);
        j->rc = pthread_join(j->thread, j->result);
        return nullptr;
      },
      &join);
  return join.rc;
}

int GC_pthread_detach(pthread_t thread) { return pthread_detach(thread); }
int GC_pthread_cancel(pthread_t thread) { return pthread_cancel(thread); }
int GC_pthread_sigmask(int how, const sigset_t* set, sigset_t* old) { return pthread_sigmask(how, set, old); }

void GC_pthread_exit(void* result) {
  GC_unregister_my_thread();
  pthread_exit(result);
}

void* GC_dlopen(const char* path, int mode) { return dlopen(path, mode); }

void GC_start_mark_threads(void) {}
void GC_set_markers_count(unsigned) {}
int GC_get_parallel(void) { return 0; }
// No signals are used to stop threads.
void GC_set_suspend_signal(int) {}
void GC_set_thr_restart_signal(int) {}
int GC_get_suspend_signal(void) { return -1; }
int GC_get_thr_restart_signal(void) { return -1; }

// Fork: the child of a multi-threaded process must not use the heap before
// exec (the concurrent sweeper thread is not copied); these hooks do nothing.
void GC_atfork_prepare(void) {}
void GC_atfork_parent(void) {}
void GC_atfork_child(void) {}
void GC_set_handle_fork(int) {}

}  // extern "C"
