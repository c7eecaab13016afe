// The caller-supplied liveness predicate for sweeping without a collector:
// any callable `bool(void* cell)`; true keeps the cell, false frees it. The
// collector will pass "is marked in this cycle".
//
// Lifetime: a captureless callable (an empty, default-constructible type,
// such as a lambda without captures) is stored by type and never dangles.
// Any other callable is referenced, so it must outlive every use: for
// Allocator::sweep() that is the call itself, so a temporary is fine; for
// lazy sweeping it is the whole cycle, so prefer a captureless one.
//
// Exceptions. A predicate may throw from Allocator::sweep() and
// finish_lazy_sweep(): the exception propagates to their caller, and the
// heap stays consistent: in the block being swept, the cells judged dead
// before the throw are freed and the rest stay allocated; that block and
// every block not yet reached stay sweepable, so a later sweep judges them
// again. Large objects are judged before any is freed, so a throw frees none.
// A lazy predicate is also called by allocation, which cannot throw
// (ThreadAllocator::try_allocate is noexcept): one that throws there ends
// the program (std::terminate). Give lazy sweeps a predicate that does not
// throw.
#pragma once

#include <concepts>
#include <cstdint>
#include <memory>
#include <type_traits>
#include <utility>

namespace handoff {

class LivenessPredicate {
 public:
  // Keeps every cell.
  LivenessPredicate() noexcept : context_(nullptr), call_([](void*, void*) { return true; }) {}

  template <class F>
    requires(!std::same_as<std::remove_cvref_t<F>, LivenessPredicate> &&
             std::is_invocable_r_v<bool, std::remove_reference_t<F>&, void*>)
  LivenessPredicate(F&& f) noexcept  // NOLINT(google-explicit-constructor)
      : context_(nullptr), call_(nullptr) {
    using Plain = std::remove_cvref_t<F>;
    using Referenced = std::remove_reference_t<F>;
    if constexpr (std::is_empty_v<Plain> && std::is_default_constructible_v<Plain>) {
      call_ = [](void*, void* cell) { return static_cast<bool>(Plain{}(cell)); };
    } else if constexpr (std::is_function_v<Referenced> || std::is_pointer_v<Plain>) {
      // A function: stored by address, which never dangles.
      context_ = reinterpret_cast<void*>(static_cast<bool (*)(void*)>(f));
      call_ = [](void* context, void* cell) { return reinterpret_cast<bool (*)(void*)>(context)(cell); };
    } else {
      context_ = const_cast<void*>(static_cast<const void*>(std::addressof(f)));
      call_ = [](void* context, void* cell) {
        return static_cast<bool>((*static_cast<Referenced*>(context))(cell));
      };
    }
  }

  // A predicate under which a block cell is live iff its mark bit is set (the
  // collector's case); `large` judges large objects only. Blocks are then
  // swept a bitmap word at a time instead of a call per cell.
  template <class F>
  static LivenessPredicate marked_or(F&& large) noexcept {
    LivenessPredicate p(std::forward<F>(large));
    p.mark_bits_decide_blocks_ = true;
    return p;
  }
  bool mark_bits_decide_blocks() const noexcept { return mark_bits_decide_blocks_; }

  // The collector's predicate: a cell (in a block, or a large object) is live
  // iff it is marked with `mark_version`; marks of any other version read as
  // unmarked, so no bitmap is cleared between cycles. `on_dead`, when set,
  // is called for every dead cell before it is freed (destructors).
  static LivenessPredicate by_marks(std::uint32_t mark_version, void (*on_dead)(void* cell)) noexcept {
    LivenessPredicate p;
    p.mark_bits_decide_blocks_ = true;
    p.mark_version_ = mark_version;
    p.on_dead_ = on_dead;
    p.call_ = nullptr;  // large objects are judged by their header's mark
    return p;
  }
  // Nonzero for by_marks predicates.
  std::uint32_t mark_version() const noexcept { return mark_version_; }
  void (*on_dead() const noexcept)(void*) { return on_dead_; }

  // Not for by_marks predicates (their callers read the marks directly).
  bool operator()(void* cell) const { return call_(context_, cell); }

 private:
  void* context_;
  bool (*call_)(void*, void*);
  bool mark_bits_decide_blocks_ = false;
  std::uint32_t mark_version_ = 0;
  void (*on_dead_)(void*) = nullptr;
};

}  // namespace handoff
