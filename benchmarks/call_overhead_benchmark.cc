// The C++ side of the PyTorch package's per-call overhead: Attention::Forward
// (and Forward + Backward) on CPU float32 tensors at tiny shapes, where the
// kernels take microseconds, so that what a caller adds around them shows.
// benchmarks/torch_call_overhead.py runs this binary and times the same calls
// through the PyTorch operators in the same run.
//
//   ./bazelw run -c opt //benchmarks:torch_call_overhead

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "attention/registry.h"
#include "benchmark/benchmark.h"

namespace dilated {
namespace {

// The shapes the Python side times too: [1, seq, heads, 16], segments
// {seq / 2, seq} with rates {1, 2}.
struct TinyShape {
  int64_t seq;
  int64_t heads;
};
constexpr TinyShape kShapes[] = {{16, 2}, {256, 4}};
constexpr int64_t kHeadDim = 16;

void RunCall(benchmark::State& state, const std::string& name, TinyShape shape,
             bool backward) {
  AttentionConfig config;
  config.segment_lengths = {shape.seq / 2, shape.seq};
  config.dilation_rates = {1, 2};
  auto attention = CreateAttention(name, config);
  if (!attention.ok()) {
    state.SkipWithError(std::string(attention.status().message()).c_str());
    return;
  }
  const std::initializer_list<int64_t> dims = {1, shape.seq, shape.heads,
                                               kHeadDim};
  const size_t elements = shape.seq * shape.heads * kHeadDim;
  std::mt19937 rng(1);
  std::normal_distribution<float> normal;
  std::vector<std::vector<float>> buffers(8, std::vector<float>(elements));
  for (auto& buffer : buffers) {
    for (float& x : buffer) x = normal(rng);
  }
  auto view = [&](int i) {
    return TensorView::Contiguous(buffers[i].data(), DType::kFloat32, dims);
  };
  std::vector<float> lse_values(shape.heads * shape.seq);
  const TensorView lse = TensorView::Contiguous(
      lse_values.data(), DType::kFloat32, {1, shape.heads, shape.seq});
  for (auto _ : state) {
    absl::Status status =
        (*attention)->Forward(view(0), view(1), view(2), view(3), {}, &lse);
    if (status.ok() && backward) {
      status = (*attention)
                   ->Backward(view(0), view(1), view(2), view(3), lse, view(4),
                              view(5), view(6), view(7));
    }
    if (!status.ok()) {
      state.SkipWithError(std::string(status.message()).c_str());
      return;
    }
    benchmark::DoNotOptimize(buffers[3].data());
  }
}

void RegisterAll() {
  for (const std::string name : {"standard", "improved"}) {
    for (const TinyShape& shape : kShapes) {
      for (const bool backward : {false, true}) {
        const std::string label =
            absl::StrCat(name, "/n:", shape.seq, "/h:", shape.heads,
                         backward ? "/fwd_bwd" : "/fwd");
        benchmark::RegisterBenchmark(label.c_str(), RunCall, name, shape,
                                     backward)
            ->Unit(benchmark::kMicrosecond)
            ->UseRealTime()
            ->MinTime(0.2);
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
