// Dilated attention on CUDA tensors: "improved" (fused strided kernels) and
// "standard" (gather, cuBLAS, softmax, scatter) on the shapes of
// docs/BASELINES.md: config A (b=1, h=8, d=64, segments 2048/4096/8192, rates
// 1/2/4) from 32K to 16M tokens, forward and forward+backward, causal or
// not; config B (b=4, n=2048, h=12, d=64, segments 512/1024/2048).
//
// Timed with CUDA events around each call (UseManualTime). Counters:
//   TFLOPs   useful TFLOP/s (docs/BASELINES.md section 1): forward =
//            4 b g (n/s) L^2 d per group, halved when causal; forward +
//            backward = 3.5 x forward.
//   extra_MiB  peak stream-ordered scratch (the device memory pool's high
//            watermark: every scratch allocation of the library goes through
//            cudaMallocAsync) above q, k, v, out, lse and the gradients.
//
// Pairs with and without the workspace pool, run back to back: config A,
// n = 32K and 128K, not causal, forward and forward+backward, each as
//   <case>/direct  no workspace allocator: the library's default without
//                  the pool (AttentionConfig::enable_memory_pool off), which
//                  takes scratch with cudaMallocAsync;
//   <case>/pool    ForwardOptions::workspace_allocator = a PoolAllocator over
//                  cudaMalloc with stream ordering (MakeCudaPoolAllocator,
//                  what enable_memory_pool selects), fresh for the case and
//                  grown by the warm-up call; adds the counters workspace_MiB
//                  and reserved_over_in_use (the pool's peak reserved over
//                  the peak workspace in use) of workspace_variant.h. A case
//                  without device workspace reports neither.
//   bazel run -c opt --config=cuda //benchmarks:cuda_attention_benchmark --
//       --benchmark_filter='/(direct|pool)$'
//
//   bazel run -c opt --config=cuda //benchmarks:cuda_attention_benchmark --
//       --benchmark_filter='improved/A/n:1048576'

#include <cuda_runtime_api.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "attention/attention.h"
#include "attention/config.h"
#include "attention/kernel_attention.h"
#include "attention/tensor.h"
#include "benchmark/benchmark.h"
#include "benchmarks/workspace_variant.h"
#include "kernels/numeric.h"
#include "memory/cuda_pool.h"

namespace dilated {
namespace {

struct Shape {
  std::string config;
  int64_t batch;
  int64_t seq;
  int64_t heads;
  int64_t head_dim;
  std::vector<int64_t> segments;
  std::vector<int64_t> rates;
};

Shape ConfigA(int64_t seq) {
  return {"A", 1, seq, 8, 64, {2048, 4096, 8192}, {1, 2, 4}};
}

Shape ConfigB(int64_t seq) {
  return {"B", 4, seq, 12, 64, {512, 1024, 2048}, {1, 2, 4}};
}

// Returns useful forward FLOPs (docs/BASELINES.md section 1).
double ForwardFlops(const Shape& s, bool causal) {
  const int64_t groups = static_cast<int64_t>(s.segments.size());
  double flops = 0.0;
  for (int64_t i = 0; i < groups; ++i) {
    const int64_t heads = s.heads / groups + (i < s.heads % groups ? 1 : 0);
    const int64_t offset = i % s.rates[i];
    const int64_t positions =
        offset >= s.segments[i]
            ? 0
            : (s.segments[i] - offset + s.rates[i] - 1) / s.rates[i];
    flops += 4.0 * s.batch * heads * (s.seq / s.segments[i]) *
             static_cast<double>(positions) * positions * s.head_dim;
  }
  return causal ? flops / 2 : flops;
}

void Check(cudaError_t error, const char* what) {
  if (error != cudaSuccess) {
    std::fprintf(stderr, "%s: %s\n", what, cudaGetErrorString(error));
    std::abort();
  }
}

// Device buffer filled with random float16 values: a 16 MiB random block
// replicated (timing needs data that is not zero and not cache-resident,
// not fresh randomness everywhere).
class Buffer {
 public:
  Buffer(size_t bytes, bool random) : bytes_(bytes) {
    Check(cudaMalloc(&data_, bytes), "cudaMalloc");
    if (!random) {
      Check(cudaMemset(data_, 0, bytes), "cudaMemset");
      return;
    }
    const size_t block = std::min<size_t>(bytes, size_t{16} << 20);
    std::vector<uint16_t> host(block / 2);
    std::mt19937 rng(static_cast<unsigned>(bytes));
    std::normal_distribution<float> normal(0.0f, 1.0f);
    for (uint16_t& x : host) x = kernels::FloatToHalf(normal(rng));
    for (size_t at = 0; at < bytes; at += block) {
      Check(cudaMemcpy(static_cast<char*>(data_) + at, host.data(),
                       std::min(block, bytes - at), cudaMemcpyHostToDevice),
            "cudaMemcpy");
    }
  }
  ~Buffer() { cudaFree(data_); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  void* data() const { return data_; }

 private:
  void* data_ = nullptr;
  size_t bytes_;
};

void ResetPoolHighWatermark() {
  cudaMemPool_t pool;
  Check(cudaDeviceGetDefaultMemPool(&pool, 0), "cudaDeviceGetDefaultMemPool");
  uint64_t zero = 0;
  Check(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrUsedMemHigh, &zero),
        "reset pool watermark");
}

double PoolHighWatermarkMiB() {
  cudaMemPool_t pool;
  Check(cudaDeviceGetDefaultMemPool(&pool, 0), "cudaDeviceGetDefaultMemPool");
  uint64_t high = 0;
  Check(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrUsedMemHigh, &high),
        "read pool watermark");
  return static_cast<double>(high) / (1 << 20);
}

// Where a case's workspace comes from.
enum class Workspace {
  kDefault,  // The library's default; no name suffix.
  kDirect,   // The same, as the "/direct" half of a pair.
  kPool,     // A fresh device pool, the "/pool" half.
};

void RunAttention(benchmark::State& state, const std::string& name,
                  const Shape& s, bool causal, bool backward, Workspace mode) {
  const Device device = Device::Cuda(0);
  const int64_t elements = s.batch * s.seq * s.heads * s.head_dim;
  const size_t bytes = elements * 2;
  Buffer q(bytes, true), k(bytes, true), v(bytes, true), out(bytes, false);
  Buffer lse(s.batch * s.heads * s.seq * sizeof(float), false);
  std::unique_ptr<Buffer> grad_out, grad_q, grad_k, grad_v;
  if (backward) {
    grad_out = std::make_unique<Buffer>(bytes, true);
    grad_q = std::make_unique<Buffer>(bytes, false);
    grad_k = std::make_unique<Buffer>(bytes, false);
    grad_v = std::make_unique<Buffer>(bytes, false);
  }
  auto view = [&](const Buffer& b) {
    return TensorView::Contiguous(b.data(), DType::kFloat16,
                                  {s.batch, s.seq, s.heads, s.head_dim},
                                  device);
  };
  const TensorView lse_view = TensorView::Contiguous(
      lse.data(), DType::kFloat32, {s.batch, s.heads, s.seq}, device);

  AttentionConfig config;
  config.segment_lengths = s.segments;
  config.dilation_rates = s.rates;
  KernelAttention attention(name, config, name);
  std::unique_ptr<WorkspaceVariant> workspace;
  if (mode == Workspace::kPool) {
    absl::StatusOr<std::unique_ptr<memory::PoolAllocator>> pool =
        memory::MakeCudaPoolAllocator(/*device=*/0);
    if (!pool.ok()) {
      state.SkipWithError(pool.status().ToString().c_str());
      return;
    }
    workspace = std::make_unique<WorkspaceVariant>(
        WorkspaceVariant::Pooled(std::move(*pool)));
  } else {
    workspace = std::make_unique<WorkspaceVariant>(
        WorkspaceVariant::Direct(/*direct=*/nullptr));
  }
  cudaStream_t stream;
  Check(cudaStreamCreate(&stream), "cudaStreamCreate");
  ForwardOptions options;
  options.is_causal = causal;
  options.stream = stream;
  options.workspace_allocator = workspace->allocator();

  auto run = [&]() {
    absl::Status status = attention.Forward(view(q), view(k), view(v),
                                            view(out), options, &lse_view);
    if (status.ok() && backward) {
      status = attention.Backward(view(q), view(k), view(v), view(out),
                                  lse_view, view(*grad_out), view(*grad_q),
                                  view(*grad_k), view(*grad_v), options);
    }
    return status;
  };
  // Warm-up: module load, cuBLAS handle, memory pool growth.
  if (absl::Status status = run(); !status.ok()) {
    state.SkipWithError(status.ToString().c_str());
    Check(cudaStreamDestroy(stream), "cudaStreamDestroy");
    return;
  }
  Check(cudaStreamSynchronize(stream), "warm-up");
  ResetPoolHighWatermark();

  cudaEvent_t start, stop;
  Check(cudaEventCreate(&start), "cudaEventCreate");
  Check(cudaEventCreate(&stop), "cudaEventCreate");
  for (auto _ : state) {
    Check(cudaEventRecord(start, stream), "cudaEventRecord");
    const absl::Status status = run();
    Check(cudaEventRecord(stop, stream), "cudaEventRecord");
    Check(cudaEventSynchronize(stop), "cudaEventSynchronize");
    if (!status.ok()) {
      state.SkipWithError(status.ToString().c_str());
      break;
    }
    float ms = 0.0f;
    Check(cudaEventElapsedTime(&ms, start, stop), "cudaEventElapsedTime");
    state.SetIterationTime(ms / 1e3);
  }
  Check(cudaGetLastError(), "kernels");
  const double flops = ForwardFlops(s, causal) * (backward ? 3.5 : 1.0);
  state.counters["TFLOPs"] = benchmark::Counter(
      flops / 1e12, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["extra_MiB"] = PoolHighWatermarkMiB();
  workspace->ReportCounters(state);
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  // The pool waits for the device before it frees its segments.
  workspace.reset();
  Check(cudaStreamDestroy(stream), "cudaStreamDestroy");
}

void Register(const std::string& name, const Shape& s, bool causal,
              bool backward, Workspace mode = Workspace::kDefault) {
  const char* const suffix = mode == Workspace::kDirect ? "/direct"
                             : mode == Workspace::kPool ? "/pool"
                                                        : "";
  const std::string label = absl::StrCat(name, "/", s.config, "/n:", s.seq, "/",
                                         backward ? "fwdbwd" : "fwd",
                                         causal ? "/causal" : "", suffix);
  benchmark::RegisterBenchmark(label.c_str(),
                               [=](benchmark::State& state) {
                                 RunAttention(state, name, s, causal, backward,
                                              mode);
                               })
      ->UseManualTime()
      ->Unit(benchmark::kMillisecond)
      ->MinTime(0.3);
}

void RegisterAll() {
  for (const std::string name : {"improved", "standard"}) {
    for (int64_t n : {32768, 131072, 524288, 1048576}) {
      for (bool causal : {false, true}) {
        for (bool backward : {false, true}) {
          Register(name, ConfigA(n), causal, backward);
        }
      }
    }
    for (int64_t n : {4194304, 16777216}) {
      Register(name, ConfigA(n), false, false);
    }
    for (bool causal : {false, true})
      Register(name, ConfigB(2048), causal, false);
  }
  // With and without the workspace pool, each pair back to back.
  for (const std::string name : {"improved", "standard"}) {
    for (int64_t n : {32768, 131072}) {
      for (bool backward : {false, true}) {
        Register(name, ConfigA(n), false, backward, Workspace::kDirect);
        Register(name, ConfigA(n), false, backward, Workspace::kPool);
      }
    }
  }
}

}  // namespace
}  // namespace dilated

int main(int argc, char** argv) {
  dilated::RegisterAll();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
