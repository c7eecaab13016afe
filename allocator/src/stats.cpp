// Stats: one snapshot (Allocator::stats) and two renderings of it, JSON for
// programs and aligned text for people. Both include the tunables in force.
#include <handoff/allocator.h>
#include <handoff/block_pool.h>
#include <handoff/directory.h>
#include <handoff/epoch.h>
#include <handoff/large_object_space.h>
#include <handoff/limbo.h>
#include <handoff/platform.h>

#include <iomanip>
#include <ostream>

namespace handoff {

AllocatorStats Allocator::stats() const {
  AllocatorStats s;
  s.pool = pool_->stats();
  for (std::size_t cls = 0; cls < kNumSizeClasses; ++cls) s.classes[cls] = directories_[cls]->stats();
  s.large = large_->stats();
  {
    std::lock_guard lock(threads_mutex_);
    s.counters = published_;
    s.attached_threads = threads_.size();
  }
  s.epoch = epochs_->stats();
  s.limbo = limbo_->stats();
  s.heap_limit_bytes = budget_.limit();
  s.budget_charged_bytes = budget_.charged();
  s.process_rss_bytes = platform::process_rss_bytes();
  return s;
}

namespace {

constexpr BlockState kAllStates[] = {BlockState::kPooled,   BlockState::kOwned, BlockState::kFull,
                                     BlockState::kUnswept,  BlockState::kSweeping, BlockState::kSwept,
                                     BlockState::kEmpty,    BlockState::kRetired};

void write_counters_json(std::ostream& out, const LocalAllocatorCounters& c) {
  out << "{";
  counters_json_fields(out, c, LocalAllocatorCounters::table());
  out << "}";
}

}  // namespace

void Allocator::write_stats_json(std::ostream& out) const {
  const AllocatorStats s = stats();
  const PoolStats& p = s.pool;
  out << "{\"pool\":{\"chunks\":" << p.chunks << ",\"reserved_bytes\":" << p.reserved_bytes
      << ",\"committed_bytes\":" << p.committed_bytes << ",\"in_use_bytes\":" << p.in_use_bytes
      << ",\"cached_bytes\":" << p.cached_bytes << ",\"purged_bytes\":" << p.purged_bytes
      << ",\"resident_bytes\":" << p.resident_bytes << ",\"blocks_acquired\":" << p.blocks_acquired
      << ",\"blocks_released\":" << p.blocks_released << ",\"blocks_purged\":" << p.blocks_purged
      << ",\"acquire_failures\":" << p.acquire_failures << "},\"classes\":[";
  for (std::size_t cls = 0; cls < kNumSizeClasses; ++cls) {
    const DirectoryStats& d = s.classes[cls];
    out << (cls ? "," : "") << "{\"class\":" << cls << ",\"cell_size\":" << d.cell_size
        << ",\"blocks\":" << d.blocks << ",\"live_cells\":" << d.live_cells
        << ",\"capacity_cells\":" << d.capacity_cells << ",\"states\":{";
    const char* sep = "";
    for (BlockState state : kAllStates) {
      out << sep << "\"" << block_state_name(state) << "\":" << d.blocks_in_state[static_cast<std::size_t>(state)];
      sep = ",";
    }
    out << "}}";
  }
  out << "],\"large\":{\"objects\":" << s.large.objects << ",\"object_bytes\":" << s.large.object_bytes
      << ",\"mapped_bytes\":" << s.large.mapped_bytes << ",\"allocated\":" << s.large.allocated
      << ",\"freed\":" << s.large.freed << "},\"counters\":";
  write_counters_json(out, s.counters);
  out << ",\"epoch\":{\"epoch\":" << s.epoch.epoch << ",\"advances\":" << s.epoch.advances
      << ",\"failed_advances\":" << s.epoch.failed_advances << ",\"participants\":" << s.epoch.participants
      << "},\"limbo\":{\"blocks\":" << s.limbo.size << ",\"retired\":" << s.limbo.retired
      << ",\"freed\":" << s.limbo.freed << "}";
  out << ",\"attached_threads\":" << s.attached_threads << ",\"heap_limit_bytes\":" << s.heap_limit_bytes
      << ",\"budget_charged_bytes\":" << s.budget_charged_bytes
      << ",\"process_rss_bytes\":" << s.process_rss_bytes << ",\"tunables\":";
  tunables_json(out, config_, AllocatorConfig::table());
  out << "}\n";
}

void Allocator::write_stats_text(std::ostream& out) const {
  const AllocatorStats s = stats();
  const PoolStats& p = s.pool;
  constexpr double kKiB = 1024.0;
  out << std::fixed << std::setprecision(1);
  out << "handoff allocator\n"
      << "  pool: " << p.chunks << " chunks, reserved " << p.reserved_bytes / kKiB << " KiB, committed "
      << p.committed_bytes / kKiB << " KiB = in use " << p.in_use_bytes / kKiB << " + cached "
      << p.cached_bytes / kKiB << " + purged " << p.purged_bytes / kKiB << " KiB\n"
      << "  blocks: acquired " << p.blocks_acquired << ", released " << p.blocks_released << ", purged "
      << p.blocks_purged << ", acquire failures " << p.acquire_failures << "\n"
      << "  large objects: " << s.large.objects << " (" << s.large.object_bytes / kKiB << " KiB)\n";
  counters_text(out, s.counters, LocalAllocatorCounters::table());
  out << "  epoch " << s.epoch.epoch << " (" << s.epoch.advances << " advances), limbo " << s.limbo.size
      << " blocks (retired " << s.limbo.retired << ", freed " << s.limbo.freed << ")\n"
      << "  process RSS " << s.process_rss_bytes / kKiB << " KiB, attached threads " << s.attached_threads
      << "\n  class  cell  blocks  live/capacity  occupancy\n";
  for (std::size_t cls = 0; cls < kNumSizeClasses; ++cls) {
    const DirectoryStats& d = s.classes[cls];
    if (d.blocks == 0) continue;
    out << std::setw(7) << cls << std::setw(6) << d.cell_size << std::setw(8) << d.blocks << std::setw(9)
        << d.live_cells << "/" << std::left << std::setw(7) << d.capacity_cells << std::right << std::setw(8)
        << 100.0 * static_cast<double>(d.live_cells) / static_cast<double>(d.capacity_cells) << "%\n";
  }
  out << "  tunables:\n";
  print_tunables(out, config_, AllocatorConfig::table());
}

}  // namespace handoff
