// File: workspace_variant.h
//
// The workspace of the paired "with and without the pool" cases of the
// attention benchmarks (CPU and CUDA): the same call, its workspace taken
// either from the direct allocator or from a PoolAllocator (what
// AttentionConfig::enable_memory_pool selects), in the same binary run.
//
//   memory::HostAllocator host;
//   WorkspaceVariant workspace =
//       pooled ? WorkspaceVariant::Pooled(
//                    std::make_unique<memory::PoolAllocator>(&host))
//              : WorkspaceVariant::Direct(&host);
//   options.workspace_allocator = workspace.allocator();
//   for (auto _ : state) { ... }
//   workspace.ReportCounters(state);
//
// Both go through a TrackingAllocator, so they pay the same bookkeeping and
// the pool's reserve is set against the exact peak in use. Counters:
//   workspace_MiB          peak workspace bytes in use, MiB;
//   reserved_over_in_use   (pool only) the pool's peak bytes reserved from
//                          its upstream over that peak in use: the bar is
//                          <= 1.2.

#ifndef BENCHMARKS_WORKSPACE_VARIANT_H_
#define BENCHMARKS_WORKSPACE_VARIANT_H_

#include <memory>
#include <utility>

#include "benchmark/benchmark.h"
#include "memory/allocator.h"
#include "memory/pool_allocator.h"
#include "memory/tracking_allocator.h"

namespace dilated {

class WorkspaceVariant {
 public:
  // Workspace from `direct`. A null `direct` passes no allocator at all:
  // the implementation's own default without the pool
  // (memory::StreamOrderedAllocator), and no counters.
  static WorkspaceVariant Direct(memory::Allocator* direct) {
    return WorkspaceVariant(direct, nullptr);
  }

  // Workspace from `pool`.
  static WorkspaceVariant Pooled(std::unique_ptr<memory::PoolAllocator> pool) {
    memory::Allocator* const allocator = pool.get();
    return WorkspaceVariant(allocator, std::move(pool));
  }

  // Returns what ForwardOptions::workspace_allocator should be.
  memory::Allocator* allocator() const { return tracking_.get(); }

  // Sets the counters above on `state`.
  void ReportCounters(benchmark::State& state) const {
    if (tracking_ == nullptr) return;
    const double peak_in_use =
        static_cast<double>(tracking_->GetStats().peak_bytes_in_use);
    state.counters["workspace_MiB"] = peak_in_use / (1 << 20);
    if (pool_ != nullptr && peak_in_use > 0) {
      state.counters["reserved_over_in_use"] =
          static_cast<double>(pool_->GetStats().peak_bytes_reserved) /
          peak_in_use;
    }
  }

 private:
  WorkspaceVariant(memory::Allocator* allocator,
                   std::unique_ptr<memory::PoolAllocator> pool)
      : pool_(std::move(pool)),
        tracking_(allocator != nullptr
                      ? std::make_unique<memory::TrackingAllocator>(allocator)
                      : nullptr) {}

  std::unique_ptr<memory::PoolAllocator> pool_;
  std::unique_ptr<memory::TrackingAllocator> tracking_;
};

}  // namespace dilated

#endif  // BENCHMARKS_WORKSPACE_VARIANT_H_
