// The core scenarios again, at reduced sizes, under each torture knob:
// lazy sweeping (the default), synchronous sweeping, no concurrent sweeper
// (reclaim happens on mutators only), a collection every few allocations,
// and the verifier after every collection. A bug that only one sweeping
// mode or one trigger pattern exposes fails here under that variant's name.
#include "heap_test_support.h"

#include <handoff/heap.h>

#include <gtest/gtest.h>

#include <string>

namespace handoff::test {
namespace {

struct Variant {
  const char* name;
  HeapConfig (*make)();
};

HeapConfig lazy() { return env_config(); }
HeapConfig sync_sweep() {
  HeapConfig config = env_config();
  config.sync_sweep = 1;
  return config;
}
HeapConfig no_sweeper() {
  HeapConfig config = env_config();
  config.sweeper.enabled = 0;
  return config;
}
HeapConfig collect_every() {
  HeapConfig config = env_config();
  // Keep a smaller period the environment asked for.
  if (config.collect_every == 0 || config.collect_every > 97) config.collect_every = 97;
  return config;
}
HeapConfig verify_each() {
  HeapConfig config = env_config();
  config.verify = 1;
  config.collect_every = config.collect_every == 0 ? 499 : config.collect_every;
  return config;
}

class Torture : public ::testing::TestWithParam<Variant> {};

TEST_P(Torture, Survival) { run_survival_scenario(GetParam().make(), Size::kReduced); }
TEST_P(Torture, StackScan) { run_stack_scan_scenario(GetParam().make(), Size::kReduced); }
TEST_P(Torture, WeakRefs) { run_weak_scenario(GetParam().make(), Size::kReduced); }
TEST_P(Torture, Finalizers) { run_finalizer_scenario(GetParam().make(), Size::kReduced); }
TEST_P(Torture, Detach) { run_detach_scenario(GetParam().make(), Size::kReduced); }

INSTANTIATE_TEST_SUITE_P(Knobs, Torture,
                         ::testing::Values(Variant{"lazy", &lazy}, Variant{"sync_sweep", &sync_sweep},
                                           Variant{"no_sweeper", &no_sweeper},
                                           Variant{"collect_every", &collect_every},
                                           Variant{"verify", &verify_each}),
                         [](const ::testing::TestParamInfo<Variant>& param_info) { return std::string(param_info.param.name); });

}  // namespace
}  // namespace handoff::test
