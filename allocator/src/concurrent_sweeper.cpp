#include <handoff/chaos.h>
#include <handoff/concurrent_sweeper.h>
#include <handoff/directory.h>
#include <handoff/epoch.h>
#include <handoff/limbo.h>
#include <handoff/mutant.h>
#include <handoff/platform.h>


#include <algorithm>
#include <array>
#include <chrono>
#include <optional>

namespace handoff {
namespace {

constexpr std::array<TunableSpec<SweeperConfig>, 9> kSweeperTunables{{
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
    {"sweeper_min_cpu_percent", "HANDOFF_SWEEPER_MIN_CPU_PERCENT", &SweeperConfig::min_cpu_percent,
     "when a background sweep got less than this share of a core (other threads held the CPUs), the next "
     "cycles' unswept blocks are left to the allocators' lazy sweeps; 0 never leaves them"},
    {"sweeper_batch_schedule", "HANDOFF_SWEEPER_BATCH", &SweeperConfig::batch_schedule,
     "1 runs the sweeper thread under SCHED_BATCH, so that waking it at the end of a collection does not "
     "preempt the collecting thread; 0 leaves it under the default policy", TunableKind::kSwitch},
}};

// After k sweeps in a row that got less than min_cpu_percent of a core, the
// sweeper leaves 2^(k-1) cycles to the allocators, at most 2^this: a machine
// whose cores come free gets background sweeping back within that many
// collections.
constexpr unsigned kMaxLeaveShift = 4;
// Sweeps shorter than this, wake-up included, are not judged: on an idle
// core the wake-up alone takes tens of microseconds, which would make any
// small sweep look starved. A sweep that waited for a busy core waited
// about a scheduler time slice, milliseconds, and is judged.
constexpr std::uint64_t kMinJudgedNs = 1'000'000;

}  // namespace

std::span<const TunableSpec<SweeperConfig>> SweeperConfig::table() { return kSweeperTunables; }

SweeperConfig SweeperConfig::from_environment() {
  SweeperConfig config;
  apply_environment(config, table());
  return config;
}

ConcurrentSweeper::ConcurrentSweeper(Allocator& heap, SweeperConfig config)
    : heap_(heap), config_(config), online_cpus_(platform::online_cpus()) {
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
  if (config_.batch_schedule != 0) platform::schedule_as_batch();  // header: "Batch scheduling"
  const auto idle = std::chrono::milliseconds(config_.idle_wait_ms == 0 ? 1 : config_.idle_wait_ms);
  std::unique_lock lock(mutex_);
  while (!stop_) {
    wake_cv_.wait_for(lock, idle, [this] { return stop_ || ((work_ || reclaim_again_) && !pause_requested()); });
    if (stop_) break;
    if (pause_requested()) continue;
    // One walk per cycle (header: "Paying for itself"). Only work_ (a
    // begin_cycle or wake since the last pass) walks the registry for S1
    // and S2 (walking every block header at each poll was a cache miss per
    // block: 16 % of the CPU samples of a w3m run on the libgc heap). A
    // pass that did something is followed at once by another that only
    // reclaims (S3, S4), and the polls in between walk nothing, with two
    // exceptions: a sweep that back-off deferred is retried at
    // each poll (while it stays deferred the retry reads only the thread
    // count), and S2 walks again while the limbo cap stopped it.
    const bool sweep = (work_ && !leaves_this_cycle()) || sweep_deferred_;
    // A cycle's sweep is judged from the wake-up: time spent waiting for a
    // core counts against it (CPU share). A retried sweep, or one whose
    // wake waited for this poll on purpose (quiet), from its start.
    sweep_clock_start_ = work_ && !woken_quietly_ ? woken_at_ : std::chrono::steady_clock::now();
    const bool retire = work_ || retire_capped_;
    work_ = false;
    reclaim_again_ = false;
    in_pass_ = true;
    lock.unlock();
    const PassResult result = pass(sweep, retire);
    lock.lock();
    sweep_deferred_ = result.sweep_deferred;
    retire_capped_ = result.retire_capped;
    in_pass_ = false;
    idle_cv_.notify_all();
    if (result.did_work) reclaim_again_ = true;  // keep reclaiming while there is work
  }
}

ConcurrentSweeper::PassResult ConcurrentSweeper::pass(bool sweep, bool retire) {
  passes_.fetch_add(1, std::memory_order_relaxed);
  PassResult result;
  result.sweep_deferred = sweep && config_.back_off != 0 && mutators_fill_the_cores();
  if (result.sweep_deferred) passes_backed_off_.fetch_add(1, std::memory_order_relaxed);
  const bool sweep_now = sweep && !result.sweep_deferred;
  retire = retire || sweep_now;  // S2 follows a sweep: it retires what S1 emptied
  if (retire) walks_.fetch_add(1, std::memory_order_relaxed);
  if (sweep_now) {
    const std::uint64_t cpu_start = platform::thread_cpu_ns();
    result.did_work = sweep_unswept_blocks();
    const auto wall =
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - sweep_clock_start_);
    judge_cpu_share(static_cast<std::uint64_t>(wall.count()), platform::thread_cpu_ns() - cpu_start);
  }
  if (pause_requested()) return result;  // resume() wakes: the next pass walks again
  const std::size_t retired = retire ? heap_.retire_empty_blocks(config_.keep_empty_blocks, config_.limbo_cap_blocks,
                                                                 config_.keep_last_cycle != 0)
                                     : 0;
  // Read before S4 empties the limbo: whether S2 stopped at the cap.
  result.retire_capped = retire && heap_.limbo().size() >= config_.limbo_cap_blocks;
  const std::size_t freed = heap_.reclaim_retired();
  blocks_retired_.fetch_add(retired, std::memory_order_relaxed);
  blocks_freed_.fetch_add(freed, std::memory_order_relaxed);
  heap_.purge(false);
  result.did_work = result.did_work || retired != 0 || freed != 0;
  return result;
}

bool ConcurrentSweeper::sweep_unswept_blocks() {
  bool did = false;
  for (std::size_t cls = 0; cls < kNumSizeClasses; ++cls) {
    Directory& directory = directory_of(heap_, cls);
    // S1 reads block pointers from the registry: pinned, because another
    // thread (release_empty_blocks) may free blocks while this walk runs.
    std::optional<ScopedPin> pinned;
    if (!HANDOFF_MUTANT(kSweeperWalkUnpinned)) pinned.emplace(heap_.epochs());
    // From the middle of the registry up, then from slot 0 to the middle:
    // the claim lanes start at the two ends ("Claim lanes" in
    // directory.cpp), so the middle is where they arrive last.
    const std::size_t n = directory.block_slots();
    for (std::size_t k = 0, i = n / 2; k < n; ++k, i = i + 1 == n ? 0 : i + 1) {
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

bool ConcurrentSweeper::leaves_this_cycle() noexcept {
  if (leave_cycles_ == 0) return false;
  --leave_cycles_;
  cycles_left_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

void ConcurrentSweeper::judge_cpu_share(std::uint64_t wall_ns, std::uint64_t cpu_ns) noexcept {
  if (config_.min_cpu_percent == 0 || wall_ns < kMinJudgedNs) return;
  if (cpu_ns * 100 >= wall_ns * config_.min_cpu_percent) {
    short_sweeps_ = 0;
    return;
  }
  short_sweeps_ = std::min(short_sweeps_ + 1, kMaxLeaveShift + 1);
  leave_cycles_ = 1u << (short_sweeps_ - 1);
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
  // Read outside the mutex: a thread attaching or detaching meanwhile only
  // moves the start of the work by one poll either way.
  const bool quiet = config_.back_off != 0 && mutators_fill_the_cores();
  {
    std::lock_guard lock(mutex_);
    work_ = true;
    woken_at_ = std::chrono::steady_clock::now();
    woken_quietly_ = quiet;
  }
  if (quiet) {
    quiet_wakes_.fetch_add(1, std::memory_order_relaxed);
    return;  // header: "Quiet wake while backed off"
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
  s.walks = walks_.load(std::memory_order_relaxed);
  s.quiet_wakes = quiet_wakes_.load(std::memory_order_relaxed);
  s.cycles_left = cycles_left_.load(std::memory_order_relaxed);
  s.limbo_blocks = heap_.limbo().size();
  s.running = thread_.joinable();
  return s;
}

}  // namespace handoff
