// The caller-supplied liveness predicate for sweeping without a collector:
// any callable `bool(void* cell)`; true keeps the cell, false frees it. The
// collector will pass "is marked in this cycle".
//
// Lifetime: a captureless callable (an empty, default-constructible type,
// such as a lambda without captures) is stored by type and never dangles.
// Any other callable is referenced, so it must outlive every use: for
// Allocator::sweep() that is the call itself, so a temporary is fine; for
// lazy sweeping it is the whole cycle, so prefer a captureless one.
#pragma once

#include <concepts>
#include <memory>
#include <type_traits>

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
    } else {
      context_ = const_cast<void*>(static_cast<const void*>(std::addressof(f)));
      call_ = [](void* context, void* cell) {
        return static_cast<bool>((*static_cast<Referenced*>(context))(cell));
      };
    }
  }

  bool operator()(void* cell) const { return call_(context_, cell); }

 private:
  void* context_;
  bool (*call_)(void*, void*);
};

}  // namespace handoff
