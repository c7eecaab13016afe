// The heap's persistent marker threads: helpers that run one job together
// with the collecting thread, then sleep until the next one.
//
// What it protects: that a job given to run() has finished on every helper
// before run() returns (a barrier), that helpers exist only while the heap
// does, and that an exception thrown by the job on any thread reaches the
// caller of run().
//
// States of a helper: waiting (on cv_, for round_ to change or stop_),
// running the job of round r, finished (running_ counted down). run()
// stores the job and bumps round_ under mutex_, notifies, runs the job as
// worker 0 itself, then waits under mutex_ for running_ == 0. Every handover
// goes through mutex_, so all that the collecting thread wrote before run()
// (stopped world, mark stacks, the job's captures) happens before a helper's
// job, and everything a helper wrote happens before run() returns: for
// ThreadSanitizer too. Helpers never attach to the heap, take part in no
// safepoint and hold no block: the stop-the-world code never sees them, and
// they run only while the collecting thread waits in run().
//
// Exceptions: the first one thrown by the job on any thread is kept and
// rethrown by run() after every helper finished; the job itself must make
// the others stop early (MarkWorkPool::abort).
//
// fork(): a child has no helpers, only their memory. usable() is false in a
// child (another process id), so the child marks on one thread, and the
// destructor leaks the threads' handles there rather than join threads that
// do not exist.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <sys/types.h>

namespace handoff::detail {

class MarkerThreads {
 public:
  // `helpers` threads besides the collecting thread.
  explicit MarkerThreads(std::size_t helpers);
  ~MarkerThreads();
  MarkerThreads(const MarkerThreads&) = delete;
  MarkerThreads& operator=(const MarkerThreads&) = delete;

  std::size_t workers() const noexcept { return threads_->size() + 1; }
  bool usable() const noexcept;
  // Runs job(w) for w in [0, workers()): w = 0 on the calling thread, the
  // others on the helpers. Returns when all have returned; rethrows the
  // first exception any of them threw. One run at a time.
  void run(const std::function<void(std::size_t worker)>& job);
  // Runs task(i) once for each i in [0, tasks), the workers taking the next
  // i from an atomic counter, inside one run() (so with its barrier and
  // its handovers). After a task throws, no worker starts another; the
  // first exception is rethrown. For the stopped-world phases other than
  // marking (collection.cpp, on_marker_threads).
  void for_each_task(std::size_t tasks, const std::function<void(std::size_t task)>& task);
  // Rounds started so far (run() calls): what a collection costs in
  // wake-ups and barriers, for tests.
  std::uint64_t rounds();

 private:
  void helper_loop(std::size_t worker);
  void keep_exception(std::exception_ptr error);

  std::mutex mutex_;
  std::condition_variable cv_;       // helpers wait here for a round
  std::condition_variable done_cv_;  // run() waits here for running_ == 0
  const std::function<void(std::size_t)>* job_ = nullptr;  // mutex_
  std::uint64_t round_ = 0;                                // mutex_
  std::size_t running_ = 0;                                // mutex_
  bool stop_ = false;                                      // mutex_
  std::exception_ptr error_;                               // mutex_
  const pid_t owner_pid_;
  std::unique_ptr<std::vector<std::thread>> threads_;
};

// HANDOFF_MARKER_THREADS resolved: 0 means one per online CPU.
std::size_t marker_thread_count(std::uint64_t configured) noexcept;

}  // namespace handoff::detail
