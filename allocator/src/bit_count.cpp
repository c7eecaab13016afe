#include <handoff/bit_count.h>

namespace handoff {
namespace detail {

#if defined(HANDOFF_POPCOUNT_DISPATCH)
namespace {
bool detect_popcnt() noexcept {
#if defined(__x86_64__)
  __builtin_cpu_init();  // needed when this runs before libgcc's own constructor
  return __builtin_cpu_supports("popcnt") != 0;
#else
  return false;  // 32-bit x86: bit_count() has no instruction path
#endif
}
}  // namespace

// Dynamic initialisation, once, before main (bit_count.h: why false is safe
// until then).
extern const bool cpu_has_popcnt = detect_popcnt();
#endif

}  // namespace detail

bool bit_count_uses_instruction() noexcept {
#if defined(HANDOFF_POPCOUNT_DISPATCH) && defined(__x86_64__)
  return detail::cpu_has_popcnt;
#elif defined(__POPCNT__)
  return true;
#else
  return false;
#endif
}

}  // namespace handoff
