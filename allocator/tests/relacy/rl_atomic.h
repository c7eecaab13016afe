// handoff::Atomic<T> for the Relacy harness: rl::atomic<T> behind the
// std::atomic interface that epoch.h uses (load, store, compare_exchange,
// fetch_add, fetch_sub with std::memory_order arguments), so the project's
// own source compiles unchanged against Relacy's model of the C++ memory
// model. Included by handoff/atomic.h when HANDOFF_RELACY is defined.
#pragma once

// Every standard header the checked code uses comes first: relacy.hpp
// defines macros (new, delete, memory_order_*) that break them otherwise.
#include <atomic>  // std::memory_order only; nothing checked is a std::atomic
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <source_location>

#include <relacy/relacy.hpp>

// Undone at once, so the project's code reads as it does in every build:
// std::memory_order_* are the standard constants (mapped below), and new and
// delete are the ordinary ones (the records they allocate are not shared
// memory that Relacy needs to see).
#undef memory_order_relaxed
#undef memory_order_consume
#undef memory_order_acquire
#undef memory_order_release
#undef memory_order_acq_rel
#undef memory_order_seq_cst
#undef new
#undef delete
#undef malloc
#undef calloc
#undef realloc
#undef free

namespace handoff {
namespace detail {

inline rl::memory_order to_relacy(std::memory_order order) noexcept {
  switch (order) {
    case std::memory_order_relaxed: return rl::mo_relaxed;
    case std::memory_order_consume: return rl::mo_consume;
    case std::memory_order_acquire: return rl::mo_acquire;
    case std::memory_order_release: return rl::mo_release;
    case std::memory_order_acq_rel: return rl::mo_acq_rel;
    case std::memory_order_seq_cst: return rl::mo_seq_cst;
  }
  return rl::mo_seq_cst;
}

}  // namespace detail

template <class T>
class Atomic {
 public:
  Atomic() noexcept : Atomic(T{}) {}
  Atomic(T value) noexcept { a_(RL_INFO).store(value, rl::mo_relaxed); }  // NOLINT: like std::atomic
  Atomic(const Atomic&) = delete;
  Atomic& operator=(const Atomic&) = delete;

  T load(std::memory_order order = std::memory_order_seq_cst) const noexcept {
    return a_(RL_INFO).load(detail::to_relacy(order));
  }
  void store(T value, std::memory_order order = std::memory_order_seq_cst) noexcept {
    a_(RL_INFO).store(value, detail::to_relacy(order));
  }
  bool compare_exchange_strong(T& expected, T desired, std::memory_order order = std::memory_order_seq_cst) noexcept {
    return a_(RL_INFO).compare_exchange_strong(expected, desired, detail::to_relacy(order));
  }
  bool compare_exchange_strong(T& expected, T desired, std::memory_order success,
                               std::memory_order failure) noexcept {
    return a_(RL_INFO).compare_exchange_strong(expected, desired, detail::to_relacy(success),
                                               detail::to_relacy(failure));
  }
  T fetch_add(T value, std::memory_order order = std::memory_order_seq_cst) noexcept {
    return a_(RL_INFO).fetch_add(value, detail::to_relacy(order));
  }
  T fetch_sub(T value, std::memory_order order = std::memory_order_seq_cst) noexcept {
    return a_(RL_INFO).fetch_sub(value, detail::to_relacy(order));
  }

 private:
  mutable rl::atomic<T> a_;
};

}  // namespace handoff
