// The sequence layouts of the API on CPU tensors, each beside the
// fixed-length run it must keep up with, float32, config A's heads (segments
// 2048, 4096, 8192; rates 1, 2, 4; h = 8, d = 64), 32K tokens in all:
// - fixed:     one sequence of 32768 tokens (the peer of "packed");
// - packed:    seven sequences of 1K to 8K tokens, 32768 in all, through
//              cu_seqlens (each segmented on its own, partial segments
//              included);
// - unpadded:  a batch of 2 x 16384 tokens (the peer of the padded runs);
// - padded50_end:   the same batch, the second half of every sequence
//              marked as padding in key_padding_mask;
// - padded50_holes: the same batch, every token padded with probability 0.5
//              (padding between kept tokens: row lists instead of strides).
// Times are compared within one run: packed / fixed, padded / unpadded.
//
//   ./bazelw build -c opt //benchmarks:layout_benchmark
//   OMP_NUM_THREADS=2 bazel-bin/benchmarks/layout_benchmark
//       --benchmark_repetitions=5 --benchmark_report_aggregates_only=true

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "attention/backend_registry.h"
#include "attention/registry.h"
#include "benchmark/benchmark.h"

namespace dilated {
namespace {

constexpr int64_t kHeads = 8;
constexpr int64_t kHeadDim = 64;
constexpr int64_t kTokens = 32768;

enum class Layout { kFixed, kPacked, kUnpadded, kPaddedEnd, kPaddedHoles };

const char* LayoutName(Layout layout) {
  switch (layout) {
    case Layout::kFixed:
      return "fixed";
    case Layout::kPacked:
      return "packed";
    case Layout::kUnpadded:
      return "unpadded";
    case Layout::kPaddedEnd:
      return "padded50_end";
    case Layout::kPaddedHoles:
      return "padded50_holes";
  }
  return "";
}

// A float32 tensor of `shape` with uniform values in [-1, 1].
struct Buffer {
  Buffer(std::initializer_list<int64_t> shape, std::mt19937* rng)
      : view(TensorView::Contiguous(nullptr, DType::kFloat32, shape)) {
    values.resize(view.NumElements());
    std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
    for (float& v : values) v = uniform(*rng);
    view.data = values.data();
  }
  std::vector<float> values;
  TensorView view;
};

void RunLayout(benchmark::State& state, const std::string& name, Layout layout,
               bool is_causal, bool backward) {
  AttentionConfig config;
  config.segment_lengths = {2048, 4096, 8192};
  config.dilation_rates = {1, 2, 4};
  absl::StatusOr<std::unique_ptr<Attention>> attention =
      CreateAttention(name, config);
  if (!attention.ok()) {
    state.SkipWithError(std::string(attention.status().message()).c_str());
    return;
  }
  const bool packed = layout == Layout::kPacked;
  const int64_t batch = layout == Layout::kFixed || packed ? 1 : 2;
  const int64_t seq = kTokens / batch;
  std::mt19937 rng(42);
  const auto make = [&] {
    return packed ? Buffer({kTokens, kHeads, kHeadDim}, &rng)
                  : Buffer({batch, seq, kHeads, kHeadDim}, &rng);
  };
  Buffer q = make(), k = make(), v = make(), out = make(), grad_out = make(),
         grad_q = make(), grad_k = make(), grad_v = make();
  std::vector<float> lse_values(kTokens * kHeads);
  const TensorView lse =
      packed ? TensorView::Contiguous(lse_values.data(), DType::kFloat32,
                                      {kHeads, kTokens})
             : TensorView::Contiguous(lse_values.data(), DType::kFloat32,
                                      {batch, kHeads, seq});

  ForwardOptions options;
  options.is_causal = is_causal;
  std::vector<int32_t> offsets = {0};
  for (int32_t length : {1024, 2048, 3072, 4096, 6144, 8192, 8192}) {
    offsets.push_back(offsets.back() + length);
  }
  if (packed) {
    options.cu_seqlens = TensorView::Contiguous(
        offsets.data(), DType::kInt32, {static_cast<int64_t>(offsets.size())});
  }
  std::vector<uint8_t> mask(batch * seq, 0);
  std::bernoulli_distribution hole(0.5);
  for (int64_t i = 0; i < batch * seq; ++i) {
    if (layout == Layout::kPaddedEnd) mask[i] = i % seq >= seq / 2;
    if (layout == Layout::kPaddedHoles) mask[i] = hole(rng);
  }
  if (layout == Layout::kPaddedEnd || layout == Layout::kPaddedHoles) {
    options.key_padding_mask =
        TensorView::Contiguous(mask.data(), DType::kBool, {batch, seq});
  }

  for (auto _ : state) {
    absl::Status status =
        (*attention)->Forward(q.view, k.view, v.view, out.view, options, &lse);
    if (status.ok() && backward) {
      status =
          (*attention)
              ->Backward(q.view, k.view, v.view, out.view, lse, grad_out.view,
                         grad_q.view, grad_k.view, grad_v.view, options);
    }
    if (!status.ok()) {
      state.SkipWithError(std::string(status.message()).c_str());
      return;
    }
    benchmark::DoNotOptimize(out.values.data());
    benchmark::ClobberMemory();
  }
}

void RegisterAll() {
  for (const std::string& name : BackendNames(DeviceType::kCpu)) {
    for (bool backward : {false, true}) {
      for (bool causal : {false, true}) {
        for (Layout layout :
             {Layout::kFixed, Layout::kPacked, Layout::kUnpadded,
              Layout::kPaddedEnd, Layout::kPaddedHoles}) {
          const std::string label = absl::StrCat(
              name, "/A/", LayoutName(layout), causal ? "/causal" : "/full",
              backward ? "/fwd_bwd" : "/fwd");
          benchmark::RegisterBenchmark(label.c_str(), RunLayout, name, layout,
                                       causal, backward)
              ->Unit(benchmark::kMillisecond)
              ->UseRealTime()
              ->MinTime(0.5);
        }
      }
    }
  }
}

}  // namespace
}  // namespace dilated

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  dilated::RegisterAll();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
