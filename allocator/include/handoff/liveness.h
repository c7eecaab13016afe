// The caller-supplied liveness predicate for sweeping without a collector.
// A non-owning reference to any callable `bool(void* cell)`: true keeps the
// cell, false frees it. The collector passes "is marked in this cycle".
#pragma once

#include <concepts>
#include <type_traits>

namespace handoff {

class LivenessPredicate {
 public:
  // Keeps every cell.
  LivenessPredicate() noexcept : context_(nullptr), call_([](void*, void*) { return true; }) {}

  template <class F>
    requires(!std::same_as<std::remove_cvref_t<F>, LivenessPredicate> &&
             std::is_invocable_r_v<bool, F&, void*>)
  LivenessPredicate(F& f) noexcept  // NOLINT(google-explicit-constructor)
      : context_(const_cast<void*>(static_cast<const void*>(&f))),
        call_([](void* context, void* cell) { return static_cast<bool>((*static_cast<F*>(context))(cell)); }) {}

  bool operator()(void* cell) const { return call_(context_, cell); }

 private:
  void* context_;
  bool (*call_)(void*, void*);
};

}  // namespace handoff
