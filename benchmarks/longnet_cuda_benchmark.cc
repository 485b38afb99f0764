// LongNet forward on one CUDA device at the paper's base width: d_model 768,
// 12 heads, segments 2048..32768 with rates 1, 2, 4, 6, 12, one encoder and
// one decoder layer (dim_feedforward 3072), batch 1, causal, float16 weights
// and activations with float32 accumulation. Timed with CUDA events around
// each forward pass (parameters and input already on the device); reports
// tokens per second at n = 32K, 128K, 512K and 1M with the "auto" core (the
// fused kernels of "improved" on CUDA), and at 32K with each other core.
//
//   ./bazelw build -c opt --config=cuda //benchmarks:longnet_cuda_benchmark
//   bazel-bin/benchmarks/longnet_cuda_benchmark

#include <cuda_runtime_api.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "attention/registry.h"
#include "benchmark/benchmark.h"
#include "kernels/numeric.h"
#include "models/cuda/cuda_transformer.h"
#include "models/cuda/device_tensor.h"
#include "models/long_net.h"

namespace dilated {
namespace models {
namespace {

LongNetConfig PaperConfig(const std::string& core) {
  LongNetConfig config;  // d_model 768, 12 heads, the paper's (s, r) pairs.
  config.num_encoder_layers = 1;
  config.num_decoder_layers = 1;
  config.attention_core = core;
  config.seed = 1;
  return config;
}

// Returns a float16 [1, n, 768] input with values in [-1, 1): a block of
// 2^20 pseudo-random values repeated.
Tensor Input(int64_t seq_len) {
  Tensor x = Tensor::Uninitialized(DType::kFloat16, {1, seq_len, 768});
  constexpr int64_t kBlock = int64_t{1} << 20;
  std::vector<uint16_t> block(kBlock);
  uint32_t state = 12345;
  for (uint16_t& value : block) {
    state = state * 1664525u + 1013904223u;
    value = kernels::FloatToHalf(static_cast<float>(state >> 8) / 8388608.0f -
                                 1.0f);
  }
  char* data = static_cast<char*>(x.mutable_data());
  for (int64_t i = 0; i < x.NumElements(); i += kBlock) {
    const int64_t count = std::min(kBlock, x.NumElements() - i);
    std::memcpy(data + 2 * i, block.data(), 2 * count);
  }
  return x;
}

void RunLongNet(benchmark::State& state, const std::string& core,
                int64_t seq_len) {
  cudaStream_t stream = nullptr;
  cudaEvent_t start = nullptr, stop = nullptr;
  if (cudaStreamCreate(&stream) != cudaSuccess ||
      cudaEventCreate(&start) != cudaSuccess ||
      cudaEventCreate(&stop) != cudaSuccess) {
    state.SkipWithError("no CUDA stream or events");
    return;
  }
  {
    absl::StatusOr<std::unique_ptr<LongNet>> host =
        LongNet::Create(PaperConfig(core));
    absl::StatusOr<std::unique_ptr<CudaLongNet>> model =
        host.ok() ? CudaLongNet::Upload(**host, DType::kFloat16, 0, stream)
                  : absl::StatusOr<std::unique_ptr<CudaLongNet>>(host.status());
    absl::StatusOr<DeviceTensor> x =
        DeviceTensor::Upload(Input(seq_len), 0, stream);
    if (!model.ok() || !x.ok()) {
      const absl::Status error = model.ok() ? x.status() : model.status();
      state.SkipWithError(std::string(error.message()).c_str());
      return;
    }
    // One untimed pass fills the memory pool and cuBLAS's heuristics cache.
    absl::StatusOr<DeviceTensor> warm = (*model)->Forward(*x, true, stream);
    if (!warm.ok()) {
      state.SkipWithError(std::string(warm.status().message()).c_str());
      return;
    }
    *warm = DeviceTensor();
    for (auto _ : state) {
      cudaEventRecord(start, stream);
      absl::StatusOr<DeviceTensor> y = (*model)->Forward(*x, true, stream);
      cudaEventRecord(stop, stream);
      if (!y.ok() || cudaEventSynchronize(stop) != cudaSuccess) {
        state.SkipWithError(y.ok() ? "CUDA error"
                                   : std::string(y.status().message()).c_str());
        break;
      }
      float milliseconds = 0.0f;
      cudaEventElapsedTime(&milliseconds, start, stop);
      state.SetIterationTime(milliseconds / 1000.0);
    }
    state.counters["tokens_per_second"] =
        benchmark::Counter(static_cast<double>(seq_len),
                           benchmark::Counter::kIsIterationInvariantRate);
    cudaStreamSynchronize(stream);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  cudaStreamDestroy(stream);
}

void RegisterAll() {
  // Keeps freed blocks in the stream-ordered pool between passes.
  cudaMemPool_t pool = nullptr;
  if (cudaDeviceGetDefaultMemPool(&pool, 0) == cudaSuccess) {
    uint64_t threshold = UINT64_MAX;
    cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold);
  }
  // "auto" runs the fused kernels of "improved" on CUDA; the unfused
  // "standard" core only at the shortest length, for comparison.
  for (const std::string& core : DilatedAttentionNames()) {
    for (int64_t seq_len :
         {int64_t{32768}, int64_t{131072}, int64_t{524288}, int64_t{1048576}}) {
      if (core != "auto" && seq_len > 32768) continue;
      benchmark::RegisterBenchmark(
          absl::StrCat("LongNetCuda/f16/", core, "/n:", seq_len).c_str(),
          [core, seq_len](benchmark::State& state) {
            RunLongNet(state, core, seq_len);
          })
          ->Unit(benchmark::kMillisecond)
          ->UseManualTime()
          ->Iterations(3);
    }
  }
}

}  // namespace
}  // namespace models
}  // namespace dilated

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  dilated::models::RegisterAll();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
