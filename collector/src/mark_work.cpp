// The termination protocol's steps (T1-T7) are named in mark_work.h.
#include "mark_work.h"

#include <chrono>
#include <thread>

namespace handoff::detail {

void MarkWorkPool::reset(std::size_t workers) noexcept {
  workers_ = workers;
  active_.store(workers, std::memory_order_seq_cst);
  aborted_.store(false, std::memory_order_relaxed);
}

void MarkWorkPool::donate(Segment&& segment) {
  std::lock_guard lock(mutex_);
  pool_.push_back(std::move(segment));
  size_.fetch_add(1, std::memory_order_seq_cst);
  donations_.fetch_add(1, std::memory_order_relaxed);
}

bool MarkWorkPool::try_take(Segment& out) {
  std::lock_guard lock(mutex_);
  if (pool_.empty()) return false;
  out = std::move(pool_.back());
  pool_.pop_back();
  size_.fetch_sub(1, std::memory_order_seq_cst);
  return true;
}

void MarkWorkPool::clear() {
  std::lock_guard lock(mutex_);
  pool_.clear();
  size_.store(0, std::memory_order_seq_cst);
}

bool MarkWorkPool::take_or_terminate(Segment& out) {
  if (!aborted() && try_take(out)) return true;  // T1
  active_.fetch_sub(1, std::memory_order_seq_cst);  // T2
  for (unsigned spins = 0;; ++spins) {
    if (aborted()) return false;  // T3
    if (size_.load(std::memory_order_seq_cst) > 0) {
      active_.fetch_add(1, std::memory_order_seq_cst);  // T4: counted before it holds anything
      if (try_take(out)) return true;
      active_.fetch_sub(1, std::memory_order_seq_cst);  // T5
    }
    if (active_.load(std::memory_order_seq_cst) == 0) return false;  // T6
    back_off(spins);  // T7
  }
}

void MarkWorkPool::back_off(unsigned spins) {
  if (spins < 64) {
    std::this_thread::yield();
  } else {
    std::this_thread::sleep_for(std::chrono::microseconds(20));
  }
}

}  // namespace handoff::detail
