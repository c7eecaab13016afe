// Sweep policies: what decides, in a sweep, which cells stay allocated.
//
// There is one sweep loop, MarkedBlock::sweep (a live-bitmap word at a
// time), and two block policies for it:
//   SweepByMarks      a cell is live iff marked with the sweep's version
//                     (the collector's case): live &= marks, a word at a
//                     time, plus on_dead for the dead cells of blocks that
//                     hold destructible cells; a block none of whose cells
//                     was marked in the cycle (its marks are stale) and
//                     that needs no on_dead is freed whole, by a count and
//                     a clear of its live words (MarkedBlock::sweep_all_dead);
//   SweepByPredicate  any callable `bool(void* cell)`, called once per
//                     allocated cell (sweeping without a collector).
// SweepPolicy is the form the allocator takes them in (Allocator::sweep,
// begin_lazy_sweep, ConcurrentSweeper::begin_cycle): a small value that a
// lazy sweep stores for the whole cycle. It bundles the block sweep with how
// a large object is judged (by the mark word in its mapping header, or by
// the same predicate), so that each kind of policy is one set of functions,
// not a tag its users branch on.
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

#include <handoff/marked_block.h>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <type_traits>
#include <utility>

namespace handoff {

// By marks of `version`: a cell is live iff its mark bit is set and the
// block's mark version is `version` (marks of any other version read as
// unmarked, so no bitmap is cleared between cycles). `on_dead`, when set, is
// called for each dead cell of a block that holds destructible cells.
struct SweepByMarks {
  std::uint32_t version;
  void (*on_dead)(void* cell) = nullptr;

  class Judge {
   public:
    Judge(const MarkedBlock& block, const SweepByMarks& policy) noexcept
        : marks_(block.mark_bits()),
          current_(block.mark_version() == policy.version ? ~std::uint64_t{0} : 0),
          on_dead_(block.has_destructible() ? policy.on_dead : nullptr) {}
    std::uint64_t keep(std::size_t w, std::uint64_t live, std::uint64_t&) const noexcept {
      return live & marks_.word(w) & current_;
    }
    bool visits_dead() const noexcept { return on_dead_ != nullptr; }
    void on_dead(void* cell) const { on_dead_(cell); }
    // Marks of another version: no cell of the block was marked in this
    // cycle, so every allocated cell dies (without a destructor to run).
    bool frees_all() const noexcept { return current_ == 0 && on_dead_ == nullptr; }

   private:
    const AtomBitmap marks_;  // a view of the block's mark words
    std::uint64_t current_;  // all ones when the marks are of this version, else 0: all dead
    void (*on_dead_)(void*);
  };
  Judge judge(const MarkedBlock& block) const noexcept { return Judge(block, *this); }
};

// By a predicate: is_live(cell) once per allocated cell; false frees it.
template <class F>
struct SweepByPredicate {
  F& is_live;

  class Judge {
   public:
    Judge(const MarkedBlock& block, F& is_live) noexcept
        : base_(const_cast<char*>(reinterpret_cast<const char*>(&block))), is_live_(is_live) {}
    std::uint64_t keep(std::size_t w, std::uint64_t live, std::uint64_t& kept) const {
      for (std::uint64_t bits = live; bits != 0; bits &= bits - 1) {
        const int bit = std::countr_zero(bits);
        void* cell = base_ + (w * 64 + static_cast<std::size_t>(bit)) * kAtomSize;
        if (!is_live_(cell)) kept &= ~(std::uint64_t{1} << bit);
      }
      return kept;
    }
    bool visits_dead() const noexcept { return false; }
    void on_dead(void*) const noexcept {}

   private:
    char* base_;
    F& is_live_;
  };
  Judge judge(const MarkedBlock& block) const noexcept { return Judge(block, is_live); }
};
template <class F>
SweepByPredicate(F&) -> SweepByPredicate<F>;

class SweepPolicy {
 public:
  // Keeps every cell.
  SweepPolicy() noexcept : SweepPolicy([](void*) { return true; }) {}

  // By a predicate (see the lifetime rule above).
  template <class F>
    requires(!std::same_as<std::remove_cvref_t<F>, SweepPolicy> &&
             std::is_invocable_r_v<bool, std::remove_reference_t<F>&, void*>)
  SweepPolicy(F&& f) noexcept  // NOLINT(google-explicit-constructor)
      : ops_(&kPredicateOps) {
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

  // The collector's policy: SweepByMarks for blocks; a large object is live
  // iff its header's mark word is `mark_version`, and on_dead is called for
  // each dead one before it is unmapped.
  static SweepPolicy by_marks(std::uint32_t mark_version, void (*on_dead)(void* cell)) noexcept {
    SweepPolicy p;
    p.ops_ = &kMarksOps;
    p.mark_version_ = mark_version;
    p.on_dead_ = on_dead;
    return p;
  }

  // Sweeps one block (held exclusively; see MarkedBlock::sweep).
  SweepCounts sweep(MarkedBlock& block) const { return ops_->sweep(*this, block); }
  // True when sweeping `block` would free nothing, known without sweeping
  // it (block not kOwned); false when it cannot be known.
  bool frees_nothing_in(const MarkedBlock& block) const noexcept { return ops_->frees_nothing_in(*this, block); }
  // Judges the large object `object` whose header mark word reads `mark`.
  bool keeps(void* object, std::uint32_t mark) const { return ops_->keeps(*this, object, mark); }
  // Called for a large object judged dead, before it is unmapped.
  void on_dead(void* object) const {
    if (on_dead_ != nullptr) on_dead_(object);
  }

 private:
  struct Ops {
    SweepCounts (*sweep)(const SweepPolicy&, MarkedBlock&);
    bool (*frees_nothing_in)(const SweepPolicy&, const MarkedBlock&) noexcept;
    bool (*keeps)(const SweepPolicy&, void* object, std::uint32_t mark);
  };
  bool call(void* cell) const { return call_(context_, cell); }

  static const Ops kPredicateOps;
  static const Ops kMarksOps;

  const Ops* ops_;
  void* context_ = nullptr;
  bool (*call_)(void*, void*) = nullptr;
  std::uint32_t mark_version_ = 0;
  void (*on_dead_)(void*) = nullptr;
};

inline const SweepPolicy::Ops SweepPolicy::kPredicateOps{
    [](const SweepPolicy& p, MarkedBlock& block) {
      const auto is_live = [&p](void* cell) { return p.call(cell); };
      return block.sweep(SweepByPredicate{is_live});
    },
    [](const SweepPolicy&, const MarkedBlock&) noexcept { return false; },
    [](const SweepPolicy& p, void* object, std::uint32_t) { return p.call(object); },
};
inline const SweepPolicy::Ops SweepPolicy::kMarksOps{
    [](const SweepPolicy& p, MarkedBlock& block) {
      return block.sweep(SweepByMarks{p.mark_version_, p.on_dead_});
    },
    [](const SweepPolicy& p, const MarkedBlock& block) noexcept { return block.all_live_marked(p.mark_version_); },
    [](const SweepPolicy& p, void*, std::uint32_t mark) { return mark == p.mark_version_; },
};

}  // namespace handoff
