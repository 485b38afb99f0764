// LongNet forward on the CPU at the paper's base width: d_model 768, 12 heads,
// segments 2048..32768 with rates 1, 2, 4, 6, 12, one encoder and one decoder
// layer (dim_feedforward 3072), batch 1, causal, float32. Reports tokens per
// second, once per registered attention core, next to the same model's
// largest single part, the encoder layer. The CPU column is the whole
// process's (all threads). benchmarks/longnet_torch_peer.py times the Python
// library's LongNet on the same model.
//
//   ./bazelw run -c opt //benchmarks:longnet_benchmark
//   (append -- --benchmark_filter='LongNet/standard' for one core)

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "attention/registry.h"
#include "benchmark/benchmark.h"
#include "kernels/cpu/cpu_path.h"
#include "kernels/cpu/linear_gemm.h"
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

// Returns a float32 [1, n, 768] input with values in [-1, 1).
Tensor Input(int64_t seq_len) {
  Tensor x = Tensor::Zeros(DType::kFloat32, {1, seq_len, 768});
  float* data = x.MutableFloat32();
  uint32_t state = 12345;
  for (int64_t i = 0; i < x.NumElements(); ++i) {
    state = state * 1664525u + 1013904223u;
    data[i] = static_cast<float>(state >> 8) / 8388608.0f - 1.0f;
  }
  return x;
}

void SetTokenRate(benchmark::State& state, int64_t seq_len) {
  state.counters["tokens_per_second"] =
      benchmark::Counter(static_cast<double>(seq_len),
                         benchmark::Counter::kIsIterationInvariantRate);
}

using kernels::cpu::MatmulPrecision;

// Sets the process's float32 matmul precision for one benchmark and back to
// the default after it.
class ScopedPrecision {
 public:
  explicit ScopedPrecision(MatmulPrecision precision) {
    kernels::cpu::SetFloat32MatmulPrecision(precision);
  }
  ~ScopedPrecision() {
    kernels::cpu::SetFloat32MatmulPrecision(MatmulPrecision::kHighest);
  }
};

void RunLongNet(benchmark::State& state, const std::string& core,
                MatmulPrecision precision, int64_t seq_len) {
  const ScopedPrecision scoped(precision);
  absl::StatusOr<std::unique_ptr<LongNet>> model =
      LongNet::Create(PaperConfig(core));
  if (!model.ok()) {
    state.SkipWithError(std::string(model.status().message()).c_str());
    return;
  }
  const Tensor x = Input(seq_len);
  for (auto _ : state) {
    absl::StatusOr<Tensor> y = (*model)->Forward(x, /*is_causal=*/true);
    if (!y.ok()) {
      state.SkipWithError(std::string(y.status().message()).c_str());
      return;
    }
    benchmark::DoNotOptimize(y->data());
  }
  SetTokenRate(state, seq_len);
}

void RunEncoderLayer(benchmark::State& state, const std::string& core,
                     int64_t seq_len) {
  absl::StatusOr<std::unique_ptr<DilatedTransformerEncoderLayer>> layer =
      DilatedTransformerEncoderLayer::Create(
          PaperConfig(core).LayerConfig(/*is_encoder=*/true));
  if (!layer.ok()) {
    state.SkipWithError(std::string(layer.status().message()).c_str());
    return;
  }
  const Tensor x = Input(seq_len);
  for (auto _ : state) {
    absl::StatusOr<Tensor> y = (*layer)->Forward(x, /*is_causal=*/true);
    if (!y.ok()) {
      state.SkipWithError(std::string(y.status().message()).c_str());
      return;
    }
    benchmark::DoNotOptimize(y->data());
  }
  SetTokenRate(state, seq_len);
}

void RegisterAll() {
  constexpr int64_t kSeqLen = 32768;
  for (const std::string& core : DilatedAttentionNames()) {
    benchmark::RegisterBenchmark(
        absl::StrCat("LongNet/", core, "/n:", kSeqLen).c_str(),
        [core](benchmark::State& state) {
          RunLongNet(state, core, MatmulPrecision::kHighest, kSeqLen);
        })
        ->Unit(benchmark::kSecond)
        ->MeasureProcessCPUTime()
        ->UseRealTime()
        ->MinTime(1.0);
    benchmark::RegisterBenchmark(
        absl::StrCat("EncoderLayer/", core, "/n:", kSeqLen).c_str(),
        [core](benchmark::State& state) {
          RunEncoderLayer(state, core, kSeqLen);
        })
        ->Unit(benchmark::kSecond)
        ->MeasureProcessCPUTime()
        ->UseRealTime()
        ->MinTime(1.0);
  }
  // The reduced float32 matmul precisions (kernels/cpu/linear_gemm.h), which
  // run the linear layers on AMX; "auto" core.
  if (!kernels::cpu::CpuHasAmx()) return;
  for (MatmulPrecision precision :
       {MatmulPrecision::kHigh, MatmulPrecision::kMedium}) {
    benchmark::RegisterBenchmark(
        absl::StrCat("LongNet/auto/matmul:",
                     kernels::cpu::MatmulPrecisionName(precision),
                     "/n:", kSeqLen)
            .c_str(),
        [precision](benchmark::State& state) {
          RunLongNet(state, "auto", precision, kSeqLen);
        })
        ->Unit(benchmark::kSecond)
        ->MeasureProcessCPUTime()
        ->UseRealTime()
        ->MinTime(1.0);
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
