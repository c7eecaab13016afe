#include <handoff/chaos.h>
#include <handoff/concurrent_sweeper.h>
#include <handoff/epoch.h>
#include <handoff/limbo.h>
#include <handoff/mutant.h>

#include <unistd.h>

#include <array>
#include <chrono>
#include <optional>

namespace handoff {
namespace {

constexpr std::array<TunableSpec<SweeperConfig>, 7> kSweeperTunables{{
    {"sweeper_enabled", "HANDOFF_SWEEPER", &SweeperConfig::enabled,
     "1 runs the concurrent sweeper thread; 0 leaves all sweeping to mutators", TunableKind::kSwitch},
    {"sweeper_start_paused", "HANDOFF_SWEEPER_START_PAUSED", &SweeperConfig::start_paused,
     "1 starts the sweeper paused: it does nothing until resume()", TunableKind::kSwitch},
    {"sweeper_keep_empty_blocks", "HANDOFF_SWEEPER_KEEP_EMPTY", &SweeperConfig::keep_empty_blocks,
     "empty blocks per size class the sweeper keeps for reuse instead of retiring"},
    {"limbo_cap_blocks", "HANDOFF_LIMBO_CAP_BLOCKS", &SweeperConfig::limbo_cap_blocks,
     "retired blocks allowed to wait for their grace period; above it, empty blocks are kept"},
    {"sweeper_idle_wait_ms", "HANDOFF_SWEEPER_IDLE_MS", &SweeperConfig::idle_wait_ms,
     "how often an idle sweeper looks for work and for grace periods that ended"},
    {"sweeper_keep_last_cycle", "HANDOFF_SWEEPER_KEEP_LAST_CYCLE", &SweeperConfig::keep_last_cycle,
     "1 also keeps, per size class, as many empty blocks as allocators filled in the last cycle (they claim "
     "them again before the next collection); 0 keeps only HANDOFF_SWEEPER_KEEP_EMPTY", TunableKind::kSwitch},
    {"sweeper_back_off", "HANDOFF_SWEEPER_BACK_OFF", &SweeperConfig::back_off,
     "1 leaves unswept blocks to the allocators' lazy sweeps while at least as many threads are attached as "
     "there are online CPUs; 0 always sweeps them in the background", TunableKind::kSwitch},
}};

std::size_t online_cpus() noexcept {
  const long online = ::sysconf(_SC_NPROCESSORS_ONLN);
  return online > 0 ? static_cast<std::size_t>(online) : 1;
}

}  // namespace

std::span<const TunableSpec<SweeperConfig>> SweeperConfig::table() { return kSweeperTunables; }

SweeperConfig SweeperConfig::from_environment() {
  SweeperConfig config;
  apply_environment(config, table());
  return config;
}

ConcurrentSweeper::ConcurrentSweeper(Allocator& heap, SweeperConfig config)
    : heap_(heap), config_(config), online_cpus_(online_cpus()) {
  pause_requested_.store(config_.start_paused != 0, std::memory_order_relaxed);
  if (config_.enabled != 0) thread_ = std::thread([this] { run(); });
}

ConcurrentSweeper::~ConcurrentSweeper() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  pause_requested_.store(true, std::memory_order_release);  // leave a pass early
  wake_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void ConcurrentSweeper::run() {
  const auto idle = std::chrono::milliseconds(config_.idle_wait_ms == 0 ? 1 : config_.idle_wait_ms);
  std::unique_lock lock(mutex_);
  while (!stop_) {
    wake_cv_.wait_for(lock, idle, [this] { return stop_ || (work_ && !pause_requested()); });
    if (stop_) break;
    if (pause_requested()) continue;
    // A pass woken only by the poll interval does not walk the registry
    // (S1, S2): nothing makes a block UNSWEPT without begin_cycle(), and
    // blocks a mutator's lazy sweep empties wait for the next walk (or a
    // wake()). Walking every block header each idle_wait_ms was a cache
    // miss per block (16 % of the CPU samples of a w3m run on the libgc
    // heap). It still walks while retired blocks wait in the limbo, which
    // may have stopped S2 at its cap.
    // A sweep that back-off deferred is retried at each poll; while it
    // stays deferred the retry walks nothing (one look at the thread count).
    const bool walk = work_ || heap_.limbo().size() != 0;
    const bool retry = sweep_deferred_;
    work_ = false;
    sweep_deferred_ = false;
    in_pass_ = true;
    lock.unlock();
    bool deferred = false;
    const bool did_work = pass(walk, retry, deferred);
    lock.lock();
    sweep_deferred_ = deferred;
    in_pass_ = false;
    idle_cv_.notify_all();
    if (did_work) work_ = true;  // keep going while there is work
  }
}

bool ConcurrentSweeper::pass(bool walk, bool retry_sweep, bool& sweep_deferred) {
  passes_.fetch_add(1, std::memory_order_relaxed);
  const bool wants_sweep = walk || retry_sweep;
  sweep_deferred = wants_sweep && config_.back_off != 0 && mutators_fill_the_cores();
  if (sweep_deferred) passes_backed_off_.fetch_add(1, std::memory_order_relaxed);
  const bool sweep_now = wants_sweep && !sweep_deferred;
  walk = walk || sweep_now;  // a retried sweep walks S2 as well
  bool did = sweep_now && sweep_unswept_blocks();
  if (pause_requested()) return did;
  const std::size_t retired = walk ? heap_.retire_empty_blocks(config_.keep_empty_blocks, config_.limbo_cap_blocks,
                                                               config_.keep_last_cycle != 0)
                                   : 0;
  const std::size_t freed = heap_.reclaim_retired();
  blocks_retired_.fetch_add(retired, std::memory_order_relaxed);
  blocks_freed_.fetch_add(freed, std::memory_order_relaxed);
  heap_.purge(false);
  return did || retired != 0 || freed != 0;
}

bool ConcurrentSweeper::sweep_unswept_blocks() {
  bool did = false;
  for (std::size_t cls = 0; cls < kNumSizeClasses; ++cls) {
    Directory& directory = heap_.directory(cls);
    // S1 reads block pointers from the registry: pinned, because another
    // thread (release_empty_blocks) may free blocks while this walk runs.
    std::optional<ScopedPin> pinned;
    if (!HANDOFF_MUTANT(kSweeperWalkUnpinned)) pinned.emplace(heap_.epochs());
    const std::size_t n = directory.block_slots();
    for (std::size_t i = 0; i < n; ++i) {
      // A safe point: we hold no block.
      if (pause_requested() && !HANDOFF_MUTANT(kSweeperIgnoresPause)) return did;
      MarkedBlock* block = directory.block_at(i);
      if (block == nullptr) continue;
      HANDOFF_CHAOS_POINT(kSweeperWalk);
      SweepCounts counts;
      if (!directory.sweep_unswept(*block, counts)) continue;
      blocks_swept_.fetch_add(1, std::memory_order_relaxed);
      cells_freed_.fetch_add(counts.freed_cells, std::memory_order_relaxed);
      did = true;
    }
  }
  return did;
}

bool ConcurrentSweeper::mutators_fill_the_cores() const {
  return heap_.attached_threads() >= online_cpus_;
}

void ConcurrentSweeper::pause() {
  pause_requested_.store(true, std::memory_order_release);
  if (HANDOFF_MUTANT(kSweeperIgnoresPause)) return;
  std::unique_lock lock(mutex_);
  idle_cv_.wait(lock, [this] { return !in_pass_; });
}

void ConcurrentSweeper::resume() {
  pause_requested_.store(false, std::memory_order_release);
  wake();
}

void ConcurrentSweeper::wake() {
  {
    std::lock_guard lock(mutex_);
    work_ = true;
  }
  wake_cv_.notify_all();
}

SweepTotals ConcurrentSweeper::begin_cycle(const SweepPolicy& policy) {
  // Leaves the sweeper as it found it: paused by the caller stays paused, and
  // an exception from begin_lazy_sweep does not leave it paused by us.
  const bool was_paused = pause_requested();
  pause();
  struct Restore {
    ConcurrentSweeper& self;
    bool was_paused;
    ~Restore() {
      if (!was_paused) self.resume();
    }
  } restore{*this, was_paused};
  const SweepTotals previous = heap_.finish_lazy_sweep();
  heap_.begin_lazy_sweep(policy);
  if (was_paused) wake();  // work is queued for when the caller resumes
  return previous;
}

SweeperStats ConcurrentSweeper::stats() const {
  SweeperStats s;
  s.passes = passes_.load(std::memory_order_relaxed);
  s.blocks_swept = blocks_swept_.load(std::memory_order_relaxed);
  s.cells_freed = cells_freed_.load(std::memory_order_relaxed);
  s.blocks_retired = blocks_retired_.load(std::memory_order_relaxed);
  s.blocks_freed = blocks_freed_.load(std::memory_order_relaxed);
  s.passes_backed_off = passes_backed_off_.load(std::memory_order_relaxed);
  s.limbo_blocks = heap_.limbo().size();
  s.running = thread_.joinable();
  return s;
}

}  // namespace handoff
