#include "marker_threads.h"

#include <handoff/platform.h>

#include <pthread.h>
#include <unistd.h>

#include <utility>

namespace handoff::detail {

std::size_t marker_thread_count(std::uint64_t configured) noexcept {
  return configured != 0 ? static_cast<std::size_t>(configured) : platform::online_cpus();
}

MarkerThreads::MarkerThreads(std::size_t helpers)
    : owner_pid_(::getpid()), threads_(std::make_unique<std::vector<std::thread>>()) {
  threads_->reserve(helpers);
  for (std::size_t i = 0; i < helpers; ++i) threads_->emplace_back([this, i] { helper_loop(i + 1); });
}

MarkerThreads::~MarkerThreads() {
  if (!usable()) {
    (void)threads_.release();  // a forked child: the threads are not ours to join
    return;
  }
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  for (std::thread& t : *threads_) t.join();
}

bool MarkerThreads::usable() const noexcept { return ::getpid() == owner_pid_; }

std::uint64_t MarkerThreads::rounds() {
  std::lock_guard lock(mutex_);
  return round_;
}

void MarkerThreads::keep_exception(std::exception_ptr error) {
  std::lock_guard lock(mutex_);
  if (!error_) error_ = std::move(error);
}

void MarkerThreads::run(const std::function<void(std::size_t)>& job) {
  {
    std::lock_guard lock(mutex_);
    job_ = &job;
    running_ = threads_->size();
    error_ = nullptr;
    ++round_;
  }
  cv_.notify_all();
  try {
    job(0);
  } catch (...) {
    keep_exception(std::current_exception());
  }
  std::exception_ptr error;
  {
    std::unique_lock lock(mutex_);
    done_cv_.wait(lock, [&] { return running_ == 0; });
    job_ = nullptr;
    error = std::exchange(error_, nullptr);
  }
  if (error) std::rethrow_exception(error);
}

void MarkerThreads::for_each_task(std::size_t tasks, const std::function<void(std::size_t)>& task) {
  std::atomic<std::size_t> next{0};
  std::atomic<bool> failed{false};
  run([&](std::size_t) {
    try {
      for (std::size_t i; !failed.load(std::memory_order_relaxed) &&
                          (i = next.fetch_add(1, std::memory_order_relaxed)) < tasks;) {
        task(i);
      }
    } catch (...) {
      failed.store(true, std::memory_order_relaxed);
      throw;
    }
  });
}

void MarkerThreads::helper_loop(std::size_t worker) {
  ::pthread_setname_np(::pthread_self(), "handoff-marker");
  std::uint64_t seen = 0;
  for (;;) {
    const std::function<void(std::size_t)>* job;
    {
      std::unique_lock lock(mutex_);
      cv_.wait(lock, [&] { return stop_ || round_ != seen; });
      if (stop_) return;
      seen = round_;
      job = job_;
    }
    try {
      (*job)(worker);
    } catch (...) {
      keep_exception(std::current_exception());
    }
    bool last;
    {
      std::lock_guard lock(mutex_);
      last = --running_ == 0;
    }
    if (last) done_cv_.notify_one();
  }
}

}  // namespace handoff::detail
