// Host allocation cost: one iteration is one allocate + free pair.
//
//   ./bazelw run -c opt //benchmarks:allocator_benchmark --
//       --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//
// Names are <shape>/<allocator>/<bytes>[/threads:N]:
//   pair/<allocator>/<bytes>    the same size allocated and freed again and
//                               again (the steady state of a training step);
//   trace/<allocator>/<bytes>   a ring of live blocks, each iteration frees
//                               the oldest and allocates a new one of a
//                               random size, log-uniform from 64 bytes to
//                               <bytes>.
// Allocators: malloc (malloc/free), direct (HostAllocator: posix_memalign,
// 64-byte alignment, double-free checks), pooled (PoolAllocator over
// HostAllocator). With threads:2 both threads share one allocator. Memory is
// not touched: this measures the allocator, not page faults.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "memory/host_allocator.h"
#include "memory/pool_allocator.h"

namespace dilated {
namespace memory {
namespace {

enum class Kind { kMalloc, kDirect, kPooled };

const char* KindName(Kind kind) {
  switch (kind) {
    case Kind::kMalloc:
      return "malloc";
    case Kind::kDirect:
      return "direct";
    case Kind::kPooled:
      return "pooled";
  }
  return "?";
}

// One of each for the whole run (leaky: benchmarks run until exit).
Allocator& Direct() {
  static HostAllocator* direct = new HostAllocator;
  return *direct;
}

Allocator& Pooled() {
  static PoolAllocator* pool = new PoolAllocator(&Direct());
  return *pool;
}

// Returns the allocator behind `kind`, or nullptr for malloc.
Allocator* AllocatorFor(Kind kind) {
  switch (kind) {
    case Kind::kMalloc:
      return nullptr;
    case Kind::kDirect:
      return &Direct();
    case Kind::kPooled:
      return &Pooled();
  }
  return nullptr;
}

// Returns the segments the pool has reserved so far (0 unless `kind` is the
// pool).
int64_t PoolMisses(Kind kind) {
  return kind == Kind::kPooled ? Pooled().GetStats().pool_misses : 0;
}

// Allocates from `allocator`, or with malloc if it is null; returns nullptr
// on failure.
inline void* Allocate(Allocator* allocator, size_t bytes) {
  if (allocator == nullptr) return std::malloc(bytes);
  absl::StatusOr<void*> p = allocator->Allocate(bytes);
  return p.ok() ? *p : nullptr;
}

inline void Free(Allocator* allocator, void* p, size_t bytes) {
  if (allocator == nullptr) {
    std::free(p);
  } else {
    allocator->Deallocate(p, bytes);
  }
}

void BM_Pair(benchmark::State& state, Kind kind, size_t bytes) {
  Allocator* const allocator = AllocatorFor(kind);
  for (auto _ : state) {
    void* p = Allocate(allocator, bytes);
    if (p == nullptr) {
      state.SkipWithError("allocation failed");
      break;
    }
    benchmark::DoNotOptimize(p);
    Free(allocator, p, bytes);
  }
  state.SetItemsProcessed(state.iterations());
}

// A ring of kLive blocks; sizes are drawn in advance, log-uniform in
// [64, max_bytes], different per thread.
void BM_Trace(benchmark::State& state, Kind kind, size_t max_bytes,
              int live_blocks) {
  Allocator* const allocator = AllocatorFor(kind);
  std::mt19937_64 rng(12345 + state.thread_index());
  std::vector<size_t> sizes(4096);
  const double log_min = std::log(64.0);
  const double log_max = std::log(static_cast<double>(max_bytes));
  std::uniform_real_distribution<double> log_size(log_min, log_max);
  for (size_t& s : sizes) s = static_cast<size_t>(std::exp(log_size(rng)));
  std::vector<void*> ring(live_blocks);
  std::vector<size_t> ring_bytes(live_blocks);
  size_t next = 0;
  for (int i = 0; i < live_blocks; ++i) {
    ring_bytes[i] = sizes[next++ % sizes.size()];
    ring[i] = Allocate(allocator, ring_bytes[i]);
  }
  const int64_t misses_before = PoolMisses(kind);
  size_t slot = 0;
  for (auto _ : state) {
    Free(allocator, ring[slot], ring_bytes[slot]);
    ring_bytes[slot] = sizes[next++ % sizes.size()];
    ring[slot] = Allocate(allocator, ring_bytes[slot]);
    if (ring[slot] == nullptr) {
      state.SkipWithError("allocation failed");
      break;
    }
    benchmark::DoNotOptimize(ring[slot]);
    if (++slot == ring.size()) slot = 0;
  }
  if (kind == Kind::kPooled) {
    // Segments the pool reserved while timed (both threads' when there are
    // two): each one is an upstream call inside the loop.
    state.counters["segments_reserved"] =
        static_cast<double>(PoolMisses(kind) - misses_before);
  }
  for (int i = 0; i < live_blocks; ++i) {
    if (ring[i] != nullptr) Free(allocator, ring[i], ring_bytes[i]);
  }
  state.SetItemsProcessed(state.iterations());
}

void RegisterAll() {
  const Kind kinds[] = {Kind::kMalloc, Kind::kDirect, Kind::kPooled};
  for (size_t bytes = 64; bytes <= (size_t{256} << 20); bytes *= 4) {
    for (Kind kind : kinds) {
      benchmark::RegisterBenchmark(
          absl::StrCat("pair/", KindName(kind), "/", bytes).c_str(), BM_Pair,
          kind, bytes)
          ->Threads(1)
          ->Threads(2)
          ->UseRealTime();
    }
  }
  // Small trace: 64 live blocks up to 1 MiB; large: 8 up to 256 MiB.
  const std::pair<size_t, int> traces[] = {{size_t{1} << 20, 64},
                                           {size_t{256} << 20, 8}};
  for (const auto& trace : traces) {
    for (Kind kind : kinds) {
      benchmark::RegisterBenchmark(
          absl::StrCat("trace/", KindName(kind), "/", trace.first).c_str(),
          BM_Trace, kind, trace.first, trace.second)
          ->Threads(1)
          ->Threads(2)
          ->UseRealTime();
    }
  }
}

}  // namespace
}  // namespace memory
}  // namespace dilated

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  dilated::memory::RegisterAll();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
