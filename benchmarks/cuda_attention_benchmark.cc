// Dilated attention on CUDA tensors: "improved" (fused strided kernels) and
// "standard" (gather, cuBLAS, softmax, scatter) on the shapes of
// docs/BASELINES.md: config A (b=1, h=8, d=64, segments 2048/4096/8192, rates
// 1/2/4) from 32K to 32M tokens (32M where the card holds its 128 GiB of
// inputs; skipped elsewhere), forward and forward+backward, causal or
// not; config B (b=4, n=2048, h=12, d=64, segments 512/1024/2048); config
// D128 (config A's segments and rates at b=1, h=16, d=128) and D256 (the
// same at h=8, d=256) at 128K and 1M tokens, "improved" only; config INNER (one
// group: segments 2048, rate 1, b=1, h=8, d=64) at 1M tokens, "improved" only.
//
// Sequence layouts at config A's heads, beside the fixed-length run of the
// same tokens: <name>/A/packed16/n:1048576 (16 sequences of 4K to 128K
// tokens, 1M in all, cu_seqlens on the host) against <name>/A/n:1048576;
// <name>/A/b2/n:524288 (two sequences of 512K) against
// <name>/A/b2_padded50/n:524288 (the same with the second half of each
// marked in a device key_padding_mask).
//
// Timed with CUDA events around each call (UseManualTime). Counters:
//   TFLOPs   useful TFLOP/s (docs/BASELINES.md section 1): forward =
//            4 b g (n/s) L^2 d per group, halved when causal; forward +
//            backward = 3.5 x forward. For the layout cases, the FLOPs of
//            the fixed-length peer (so TFLOPs compare times directly).
//   extra_MiB  peak workspace (a stream-ordered allocator of the case's own,
//            what the library uses by default) above q, k, v, out, lse and
//            the gradients.
//
// Pairs with and without the workspace pool, run back to back: config A,
// n = 32K and 128K, not causal, forward and forward+backward, each as
//   <case>/direct  a stream-ordered CudaAsyncAllocator: the library's
//                  default without the pool (AttentionConfig::
//                  enable_memory_pool off);
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
#include "memory/cuda_async_allocator.h"
#include "memory/cuda_pool.h"

namespace dilated {
namespace {

// How the tokens of a case are laid out (see the file comment).
enum class Layout { kFixed, kPacked16, kPadded50 };

struct Shape {
  std::string config;
  int64_t batch;
  int64_t seq;
  int64_t heads;
  int64_t head_dim;
  std::vector<int64_t> segments;
  std::vector<int64_t> rates;
  Layout layout = Layout::kFixed;
};

// Sixteen sequence lengths from 4K to 128K (multiples of 4K) that add up to
// 1M tokens, as cu_seqlens.
std::vector<int32_t> Packed16Offsets() {
  const std::vector<int32_t> lengths = {
      4096,  8192,  16384, 24576, 32768,  40960,  49152,  57344,
      65536, 73728, 81920, 98304, 114688, 118784, 131072, 131072};
  std::vector<int32_t> offsets = {0};
  for (int32_t length : lengths) offsets.push_back(offsets.back() + length);
  return offsets;
}

Shape ConfigA(int64_t seq) {
  return {"A", 1, seq, 8, 64, {2048, 4096, 8192}, {1, 2, 4}};
}

// Config A's segments and rates at head_dim 128 with 16 heads.
Shape ConfigD128(int64_t seq) {
  return {"D128", 1, seq, 16, 128, {2048, 4096, 8192}, {1, 2, 4}};
}

// Config A's segments and rates at head_dim 256 with 8 heads.
Shape ConfigD256(int64_t seq) {
  return {"D256", 1, seq, 8, 256, {2048, 4096, 8192}, {1, 2, 4}};
}

// One group: config A's first segment length at rate 1 on all 8 heads (the
// dense shape inside config A).
Shape ConfigInner(int64_t seq) { return {"INNER", 1, seq, 8, 64, {2048}, {1}}; }

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
  // The largest cases (config A at n = 32M: 128 GiB of q, k, v and out) fit
  // only on cards with the memory; elsewhere they are skipped, not failed.
  const size_t lse_bytes = s.batch * s.heads * s.seq * sizeof(float);
  const size_t needed = (backward ? 8 : 4) * bytes + lse_bytes;
  size_t free_bytes = 0;
  size_t total_bytes = 0;
  Check(cudaMemGetInfo(&free_bytes, &total_bytes), "cudaMemGetInfo");
  if (needed > free_bytes) {
    state.SkipWithError(absl::StrCat("the inputs need ", needed >> 20,
                                     " MiB, the device has ", free_bytes >> 20,
                                     " MiB free")
                            .c_str());
    return;
  }
  Buffer q(bytes, true), k(bytes, true), v(bytes, true), out(bytes, false);
  Buffer lse(lse_bytes, false);
  const std::vector<int32_t> offsets = Packed16Offsets();
  std::unique_ptr<Buffer> mask;
  std::unique_ptr<Buffer> grad_out, grad_q, grad_k, grad_v;
  if (backward) {
    grad_out = std::make_unique<Buffer>(bytes, true);
    grad_q = std::make_unique<Buffer>(bytes, false);
    grad_k = std::make_unique<Buffer>(bytes, false);
    grad_v = std::make_unique<Buffer>(bytes, false);
  }
  const bool packed = s.layout == Layout::kPacked16;
  auto view = [&](const Buffer& b) {
    return packed ? TensorView::Contiguous(b.data(), DType::kFloat16,
                                           {s.seq, s.heads, s.head_dim}, device)
                  : TensorView::Contiguous(
                        b.data(), DType::kFloat16,
                        {s.batch, s.seq, s.heads, s.head_dim}, device);
  };
  const TensorView lse_view =
      packed ? TensorView::Contiguous(lse.data(), DType::kFloat32,
                                      {s.heads, s.seq}, device)
             : TensorView::Contiguous(lse.data(), DType::kFloat32,
                                      {s.batch, s.heads, s.seq}, device);

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
  }
  absl::StatusOr<std::unique_ptr<memory::CudaAsyncAllocator>> direct =
      memory::CudaAsyncAllocator::Create(/*device=*/0);
  if (!direct.ok()) {
    state.SkipWithError(direct.status().ToString().c_str());
    return;
  }
  if (mode != Workspace::kPool) {
    workspace = std::make_unique<WorkspaceVariant>(
        WorkspaceVariant::Direct(direct->get()));
  }
  cudaStream_t stream;
  Check(cudaStreamCreate(&stream), "cudaStreamCreate");
  ForwardOptions options;
  options.is_causal = causal;
  options.stream = stream;
  options.workspace_allocator = workspace->allocator();
  if (packed) {
    options.cu_seqlens = TensorView::Contiguous(
        const_cast<int32_t*>(offsets.data()), DType::kInt32,
        {static_cast<int64_t>(offsets.size())});
  }
  if (s.layout == Layout::kPadded50) {
    std::vector<uint8_t> padding(s.batch * s.seq);
    for (int64_t i = 0; i < s.batch * s.seq; ++i) {
      padding[i] = i % s.seq >= s.seq / 2;
    }
    mask = std::make_unique<Buffer>(padding.size(), false);
    Check(cudaMemcpy(mask->data(), padding.data(), padding.size(),
                     cudaMemcpyHostToDevice),
          "cudaMemcpy mask");
    options.key_padding_mask = TensorView::Contiguous(
        mask->data(), DType::kBool, {s.batch, s.seq}, device);
  }

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
  state.counters["extra_MiB"] =
      static_cast<double>(
          workspace->allocator()->GetStats().peak_bytes_in_use) /
      (1 << 20);
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
  const char* const layout = s.layout == Layout::kPacked16   ? "/packed16"
                             : s.layout == Layout::kPadded50 ? "/b2_padded50"
                             : s.batch == 2                  ? "/b2"
                                                             : "";
  const std::string label = absl::StrCat(
      name, "/", s.config, layout, "/n:", s.seq, "/",
      backward ? "fwdbwd" : "fwd", causal ? "/causal" : "", suffix);
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
    for (int64_t n : {4194304, 16777216, 33554432}) {
      Register(name, ConfigA(n), false, false);
    }
    for (bool causal : {false, true})
      Register(name, ConfigB(2048), causal, false);
  }
  for (int64_t n : {131072, 1048576}) {
    for (bool causal : {false, true}) {
      for (bool backward : {false, true}) {
        Register("improved", ConfigD128(n), causal, backward);
        Register("improved", ConfigD256(n), causal, backward);
      }
    }
  }
  for (bool causal : {false, true}) {
    for (bool backward : {false, true}) {
      Register("improved", ConfigInner(1048576), causal, backward);
    }
  }
  // The layouts ("improved": "standard" on CUDA runs fixed-length input
  // only); the peer of packed16 is improved/A/n:1048576 above.
  for (bool causal : {false, true}) {
    for (bool backward : {false, true}) {
      Shape packed = ConfigA(1048576);
      packed.layout = Layout::kPacked16;
      Register("improved", packed, causal, backward);
      Shape unpadded = ConfigA(524288);
      unpadded.batch = 2;
      Shape padded = unpadded;
      padded.layout = Layout::kPadded50;
      Register("improved", unpadded, causal, backward);
      Register("improved", padded, causal, backward);
    }
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
