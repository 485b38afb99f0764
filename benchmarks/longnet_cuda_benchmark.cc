// LongNet forward on one CUDA device at the paper's base width: d_model 768,
// 12 heads, segments 2048..32768 with rates 1, 2, 4, 6, 12, one encoder and
// one decoder layer (dim_feedforward 3072), batch 1, causal, float16 weights
// and activations with float32 accumulation. Timed with CUDA events around
// each forward pass (parameters and input already on the device); reports
// tokens per second at n = 32K, 128K, 512K and 1M with the "auto" core (the
// fused kernels of "improved" on CUDA), and at 32K with each other core;
// with "auto", also batch 2 at n = 32K and 512K.
// LongNetCudaRoofline is the floor the model's forward is measured against:
// its linear layers' products timed alone with cublasGemmEx (the shapes the
// model multiplies, with q, k and v stacked as it stacks them; its dtype and
// compute type; no bias) plus its three attention calls alone (the "auto"
// core on strided q, k, v views of one stacked projection, as the model
// reads them); counters gemm_ms and attention_ms. Its buffers hold
// pseudo-random values (activations in [-1, 1), weights in [-1/32, 1/32));
// the /zeros/ twins run on zero-filled buffers, on which the tensor cores
// draw less power and the card can hold higher clocks. The same run times the
// forward's other stages alone, as the model runs them: stage_gemm_ms (the
// products through LinearProducts, bias and residual in the epilogue) and
// stage_layer_norm_ms (its nine LayerNorms, two with the activation fused).
// LongNetCudaStages times the same stages inside the model's forward, on its
// data, with the model's StageTimer (stage_timer.h).
//
//   ./bazelw build -c opt --config=cuda //benchmarks:longnet_cuda_benchmark
//   bazel-bin/benchmarks/longnet_cuda_benchmark

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "attention/registry.h"
#include "benchmark/benchmark.h"
#include "kernels/numeric.h"
#include "models/attention_core.h"
#include "models/cuda/cuda_transformer.h"
#include "models/cuda/device_ops.h"
#include "models/cuda/device_tensor.h"
#include "models/cuda/linear_products.h"
#include "models/cuda/stage_timer.h"
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

constexpr int64_t kRandomBlock = int64_t{1} << 20;

// Returns 2^20 pseudo-random float16 values in [-scale, scale).
std::vector<uint16_t> RandomHalves(float scale) {
  std::vector<uint16_t> block(kRandomBlock);
  uint32_t state = 12345;
  for (uint16_t& value : block) {
    state = state * 1664525u + 1013904223u;
    value = kernels::FloatToHalf(
        scale * (static_cast<float>(state >> 8) / 8388608.0f - 1.0f));
  }
  return block;
}

// Returns a float16 [batch, n, 768] input with values in [-1, 1): the block
// of RandomHalves repeated.
Tensor Input(int64_t batch, int64_t seq_len) {
  Tensor x = Tensor::Uninitialized(DType::kFloat16, {batch, seq_len, 768});
  const std::vector<uint16_t> block = RandomHalves(1.0f);
  char* data = static_cast<char*>(x.mutable_data());
  for (int64_t i = 0; i < x.NumElements(); i += kRandomBlock) {
    const int64_t count = std::min(kRandomBlock, x.NumElements() - i);
    std::memcpy(data + 2 * i, block.data(), 2 * count);
  }
  return x;
}

// Fills `count` float16 values at `device` with the block of RandomHalves
// (scale) repeated, or with zeros when `zeros`.
bool FillDevice(void* device, int64_t count, float scale, bool zeros) {
  if (zeros) return cudaMemset(device, 0, 2 * count) == cudaSuccess;
  const std::vector<uint16_t> block = RandomHalves(scale);
  for (int64_t i = 0; i < count; i += kRandomBlock) {
    const int64_t n = std::min(kRandomBlock, count - i);
    if (cudaMemcpy(static_cast<char*>(device) + 2 * i, block.data(), 2 * n,
                   cudaMemcpyHostToDevice) != cudaSuccess) {
      return false;
    }
  }
  return true;
}

// With `stages`, the model's StageTimer records every stage of the timed
// passes, and the counters give their mean device time per pass by kind
// (in_model_*_ms) and the rest of the pass (in_model_other_ms).
void RunLongNet(benchmark::State& state, const std::string& core, int64_t batch,
                int64_t seq_len, bool stages) {
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
        DeviceTensor::Upload(Input(batch, seq_len), 0, stream);
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
    if (stages) (*model)->stage_timer().Enable();
    StageTimes stage_totals;
    double forward_total = 0.0;
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
      forward_total += milliseconds;
      if (stages) {
        absl::StatusOr<StageTimes> times = (*model)->stage_timer().Collect();
        if (!times.ok()) {
          state.SkipWithError(std::string(times.status().message()).c_str());
          break;
        }
        stage_totals.linear_product_ms += times->linear_product_ms;
        stage_totals.layer_norm_ms += times->layer_norm_ms;
        stage_totals.attention_ms += times->attention_ms;
      }
    }
    if (stages && state.iterations() > 0) {
      const double passes = static_cast<double>(state.iterations());
      state.counters["in_model_linear_product_ms"] =
          stage_totals.linear_product_ms / passes;
      state.counters["in_model_layer_norm_ms"] =
          stage_totals.layer_norm_ms / passes;
      state.counters["in_model_attention_ms"] =
          stage_totals.attention_ms / passes;
      state.counters["in_model_other_ms"] =
          (forward_total - stage_totals.linear_product_ms -
           stage_totals.layer_norm_ms - stage_totals.attention_ms) /
          passes;
    }
    state.counters["tokens_per_second"] =
        benchmark::Counter(static_cast<double>(batch * seq_len),
                           benchmark::Counter::kIsIterationInvariantRate);
    cudaStreamSynchronize(stream);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  cudaStreamDestroy(stream);
}

// The products of one LongNet forward as the model runs them (one encoder
// layer: the stacked q, k, v projection, the out projection with the
// residual, two feed-forward layers, the second with the residual; one
// decoder layer: the same, plus a cross-attention whose q and stacked k, v
// are projected apart), as (in_features, out_features, count, residual).
struct LinearShape {
  int in;
  int out;
  int count;
  bool residual;
};
constexpr LinearShape kLinearShapes[] = {
    {768, 2304, 2, false}, {768, 1536, 1, false}, {768, 768, 1, false},
    {768, 768, 3, true},   {768, 3072, 2, false}, {3072, 768, 2, true}};

// The LayerNorms of one LongNet forward, as (features, count, activation):
// the layers' norms and the attentions' sub-norms, and the feed-forward
// sub-norms with the activation in their kernel.
struct NormShape {
  int features;
  int count;
  gpu::RowActivation activation;
};
constexpr NormShape kNormShapes[] = {{768, 7, gpu::RowActivation::kNone},
                                     {3072, 2, gpu::RowActivation::kRelu}};

// Times `body` (which enqueues work on `stream`) with CUDA events; returns
// milliseconds, or a negative value on a CUDA error.
template <class F>
float TimeOnStream(cudaStream_t stream, F body) {
  cudaEvent_t start = nullptr, stop = nullptr;
  if (cudaEventCreate(&start) != cudaSuccess ||
      cudaEventCreate(&stop) != cudaSuccess) {
    return -1.0f;
  }
  cudaEventRecord(start, stream);
  const bool ok = body();
  cudaEventRecord(stop, stream);
  float milliseconds = -1.0f;
  if (ok && cudaEventSynchronize(stop) == cudaSuccess) {
    cudaEventElapsedTime(&milliseconds, start, stop);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return milliseconds;
}

void RunRoofline(benchmark::State& state, int64_t seq_len, bool zeros) {
  constexpr int kModel = 768;
  constexpr int kWidest = 3072;
  constexpr int64_t kHeads = 12;
  cudaStream_t stream = nullptr;
  cublasHandle_t cublas = nullptr;
  void* x = nullptr;  // [n, 3072]: a layer's input, and the fused q, k, v
  void* weight = nullptr;
  void* y = nullptr;  // [n, 3072]: a layer's output, and the attention's
  const size_t activation_bytes = seq_len * kWidest * 2;
  absl::StatusOr<std::shared_ptr<LinearProducts>> products =
      LinearProducts::Create(0);
  if (cudaStreamCreate(&stream) != cudaSuccess ||
      cublasCreate(&cublas) != CUBLAS_STATUS_SUCCESS ||
      cublasSetStream(cublas, stream) != CUBLAS_STATUS_SUCCESS ||
      cudaMalloc(&x, activation_bytes) != cudaSuccess ||
      cudaMalloc(&weight, kWidest * kWidest * 2) != cudaSuccess ||
      cudaMalloc(&y, activation_bytes) != cudaSuccess ||
      !FillDevice(x, seq_len * kWidest, 1.0f, zeros) ||
      !FillDevice(weight, kWidest * kWidest, 1.0f / 32.0f, zeros)) {
    state.SkipWithError("no CUDA stream, cuBLAS handle or device memory");
  } else if (!products.ok()) {
    state.SkipWithError(std::string(products.status().message()).c_str());
  } else {
    const LongNetConfig config = PaperConfig("auto");
    absl::StatusOr<std::unique_ptr<Attention>> core = CreateAttentionCore(
        "auto", config.segment_lengths, config.dilation_rates);
    auto gemms = [&] {
      const float alpha = 1.0f, beta = 0.0f;
      for (const LinearShape& shape : kLinearShapes) {
        for (int i = 0; i < shape.count; ++i) {
          // As CudaLinear: y^T[out, n] = W[out, in] x^T[in, n], column-major.
          if (cublasGemmEx(cublas, CUBLAS_OP_T, CUBLAS_OP_N, shape.out,
                           static_cast<int>(seq_len), shape.in, &alpha, weight,
                           CUDA_R_16F, shape.in, x, CUDA_R_16F, shape.in, &beta,
                           y, CUDA_R_16F, shape.out, CUBLAS_COMPUTE_32F,
                           CUBLAS_GEMM_DEFAULT) != CUBLAS_STATUS_SUCCESS) {
            return false;
          }
        }
      }
      return true;
    };
    // The weight buffer's first 3072 halves stand in for every bias, its
    // first 3072 floats for every LayerNorm weight and bias.
    auto stage_gemms = [&] {
      for (const LinearShape& shape : kLinearShapes) {
        for (int i = 0; i < shape.count; ++i) {
          LinearProduct product;
          product.dtype = DType::kFloat16;
          product.rows = seq_len;
          product.in = shape.in;
          product.out = shape.out;
          product.x = x;
          product.weight = weight;
          product.bias = weight;
          product.residual = shape.residual ? x : nullptr;
          product.y = y;
          if (!(*products)->Run(product, stream).ok()) return false;
        }
      }
      return true;
    };
    auto stage_norms = [&] {
      for (const NormShape& shape : kNormShapes) {
        for (int i = 0; i < shape.count; ++i) {
          gpu::LayerNormArgs args;
          args.x = x;
          args.x_row_stride = shape.features;
          args.y = y;
          args.y_row_stride = shape.features;
          args.rows = seq_len;
          args.features = shape.features;
          args.weight = static_cast<const float*>(weight);
          args.bias = static_cast<const float*>(weight);
          args.activation = shape.activation;
          args.dtype = gpu::DataType::kFloat16;
          if (gpu::LayerNormRows(args, stream) != cudaSuccess) return false;
        }
      }
      return true;
    };
    auto view = [&](void* base, int64_t column, int64_t width) {
      TensorView v;
      v.data = static_cast<char*>(base) + column * 2;
      v.dtype = DType::kFloat16;
      v.device = Device::Cuda(0);
      v.rank = 4;
      const int64_t shape[4] = {1, seq_len, kHeads, kModel / kHeads};
      const int64_t strides[4] = {seq_len * width, width, kModel / kHeads, 1};
      for (int d = 0; d < 4; ++d) {
        v.shape[d] = shape[d];
        v.strides[d] = strides[d];
      }
      return v;
    };
    auto attention = [&] {
      ForwardOptions options;
      options.is_causal = true;
      options.stream = stream;
      for (int call = 0; call < 3; ++call) {
        if (!(*core)
                 ->Forward(view(x, 0, 3 * kModel), view(x, kModel, 3 * kModel),
                           view(x, 2 * kModel, 3 * kModel), view(y, 0, kModel),
                           options)
                 .ok()) {
          return false;
        }
      }
      return true;
    };
    if (!core.ok()) {
      state.SkipWithError(std::string(core.status().message()).c_str());
    } else if (TimeOnStream(stream, gemms) < 0 ||
               TimeOnStream(stream, attention) < 0 ||
               TimeOnStream(stream, stage_gemms) < 0 ||
               TimeOnStream(stream, stage_norms) < 0) {  // warm-up
      state.SkipWithError("a cuBLAS, LayerNorm or attention call failed");
    } else {
      double gemm_total = 0.0, attention_total = 0.0;
      double stage_gemm_total = 0.0, stage_norm_total = 0.0;
      for (auto _ : state) {
        const float gemm_ms = TimeOnStream(stream, gemms);
        const float attention_ms = TimeOnStream(stream, attention);
        const float stage_gemm_ms = TimeOnStream(stream, stage_gemms);
        const float stage_norm_ms = TimeOnStream(stream, stage_norms);
        if (gemm_ms < 0 || attention_ms < 0 || stage_gemm_ms < 0 ||
            stage_norm_ms < 0) {
          state.SkipWithError("a cuBLAS, LayerNorm or attention call failed");
          break;
        }
        gemm_total += gemm_ms;
        attention_total += attention_ms;
        stage_gemm_total += stage_gemm_ms;
        stage_norm_total += stage_norm_ms;
        state.SetIterationTime((gemm_ms + attention_ms) / 1000.0);
      }
      const double iterations = static_cast<double>(state.iterations());
      state.counters["gemm_ms"] = gemm_total / iterations;
      state.counters["attention_ms"] = attention_total / iterations;
      state.counters["stage_gemm_ms"] = stage_gemm_total / iterations;
      state.counters["stage_layer_norm_ms"] = stage_norm_total / iterations;
    }
  }
  cudaFree(x);
  cudaFree(weight);
  cudaFree(y);
  if (cublas != nullptr) cublasDestroy(cublas);
  if (stream != nullptr) cudaStreamDestroy(stream);
}

// Registers `run` under `name`: CUDA-event times in milliseconds, 3 passes.
void RegisterTimed(const std::string& name,
                   std::function<void(benchmark::State&)> run) {
  benchmark::RegisterBenchmark(name.c_str(), std::move(run))
      ->Unit(benchmark::kMillisecond)
      ->UseManualTime()
      ->Iterations(3);
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
      RegisterTimed(absl::StrCat("LongNetCuda/f16/", core, "/n:", seq_len),
                    [core, seq_len](benchmark::State& state) {
                      RunLongNet(state, core, 1, seq_len, /*stages=*/false);
                    });
    }
  }
  // Batch 2: the tokens of two sequences in one forward (tokens_per_second
  // counts both), against twice the batch-1 time at the same n.
  for (int64_t seq_len : {int64_t{32768}, int64_t{524288}}) {
    RegisterTimed(absl::StrCat("LongNetCuda/f16/auto/b:2/n:", seq_len),
                  [seq_len](benchmark::State& state) {
                    RunLongNet(state, "auto", 2, seq_len, /*stages=*/false);
                  });
  }
  for (int64_t seq_len : {int64_t{32768}, int64_t{1048576}}) {
    RegisterTimed(absl::StrCat("LongNetCudaStages/f16/auto/n:", seq_len),
                  [seq_len](benchmark::State& state) {
                    RunLongNet(state, "auto", 1, seq_len, /*stages=*/true);
                  });
  }
  for (const bool zeros : {false, true}) {
    for (int64_t seq_len :
         {int64_t{32768}, int64_t{131072}, int64_t{524288}, int64_t{1048576}}) {
      RegisterTimed(absl::StrCat("LongNetCudaRoofline/f16/",
                                 zeros ? "zeros" : "random", "/n:", seq_len),
                    [seq_len, zeros](benchmark::State& state) {
                      RunRoofline(state, seq_len, zeros);
                    });
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
