// Device allocation cost: one iteration is one allocate + free pair, timed
// on the host (what a caller waits for), on one stream.
//
//   ./bazelw run -c opt --config=cuda //benchmarks:cuda_allocator_benchmark
//       -- --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//
// Names are pair/<allocator>/<bytes>: cuda_direct (cudaMalloc + cudaFree),
// cuda_async (cudaMallocFromPoolAsync + cudaFreeAsync on a driver pool that
// keeps its memory), cuda_pooled (PoolAllocator over cudaMalloc). The stream
// is synchronised once after the timed loop, not per pair.
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdio>
#include <memory>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "memory/cuda_allocator.h"
#include "memory/cuda_async_allocator.h"
#include "memory/cuda_pool.h"

namespace dilated {
namespace memory {
namespace {

cudaStream_t Stream() {
  static cudaStream_t stream = [] {
    cudaStream_t s = nullptr;
    cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
    return s;
  }();
  return stream;
}

void BM_Pair(benchmark::State& state, Allocator* allocator, size_t bytes) {
  for (auto _ : state) {
    absl::StatusOr<void*> p = allocator->Allocate(bytes, 256, Stream());
    if (!p.ok()) {
      state.SkipWithError(std::string(p.status().message()).c_str());
      break;
    }
    benchmark::DoNotOptimize(*p);
    allocator->Deallocate(*p, bytes, 256, Stream());
  }
  cudaStreamSynchronize(Stream());
  state.SetItemsProcessed(state.iterations());
}

}  // namespace
}  // namespace memory
}  // namespace dilated

int main(int argc, char** argv) {
  using namespace dilated::memory;  // NOLINT(build/namespaces): main only.
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  auto direct = CudaAllocator::Create(0);
  auto async = CudaAsyncAllocator::Create(0);
  auto pooled = MakeCudaPoolAllocator(0);
  if (!direct.ok() || !async.ok() || !pooled.ok()) {
    std::fprintf(stderr, "no CUDA device: %s %s %s\n",
                 direct.status().ToString().c_str(),
                 async.status().ToString().c_str(),
                 pooled.status().ToString().c_str());
    return 1;
  }
  const std::pair<const char*, Allocator*> allocators[] = {
      {"cuda_direct", direct->get()},
      {"cuda_async", async->get()},
      {"cuda_pooled", pooled->get()}};
  for (size_t bytes : {size_t{1} << 10, size_t{64} << 10, size_t{1} << 20,
                       size_t{16} << 20, size_t{256} << 20}) {
    for (const auto& entry : allocators) {
      benchmark::RegisterBenchmark(
          absl::StrCat("pair/", entry.first, "/", bytes).c_str(), BM_Pair,
          entry.second, bytes)
          ->UseRealTime();
    }
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
