// The main comparison: every registered implementation on CPU tensors over the
// configurations of docs/BASELINES.md, forward and forward+backward, causal
// and not. Reports useful FLOP/s with the FlashAttention convention
// (docs/BASELINES.md section 1):
// forward = 4 * b * g * (n / s) * L^2 * d per group, halved when causal;
// forward + backward = 3.5 x forward. Ends with a table of every
// implementation's time and its ratio to "standard", shape by shape
// (benchmarks/summary_reporter.h). "extra_heap_MiB" is the peak heap above
// what was held before one call (inputs and outputs are allocated first).
// With --plot=FILE it also writes a PNG of time and memory against the
// sequence length (benchmarks/sequence_length_plot.h).
//
//   ./bazelw run -c opt //benchmarks:attention_benchmark
//   ./bazelw run -c opt //benchmarks:attention_benchmark --
//       --benchmark_filter='improved/A/n:32768'  (one line)
//   ./bazelw run -c opt //benchmarks:attention_benchmark --
//       --benchmark_out=results.json --plot=results.png

#include <cstdint>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "attention/params_builder.h"
#include "attention/registry.h"
#include "benchmark/benchmark.h"
#include "benchmarks/heap_tracker.h"
#include "benchmarks/sequence_length_plot.h"
#include "benchmarks/summary_reporter.h"
#include "benchmarks/workspace_variant.h"
#include "memory/host_allocator.h"
#include "memory/pool_allocator.h"

namespace dilated {
namespace {

struct Workload {
  std::string config_name;  // "A" or "B", as in docs/BASELINES.md.
  int64_t batch;
  int64_t seq_len;
  int64_t num_heads;
  int64_t head_dim;
  std::vector<int64_t> segment_lengths;
  std::vector<int64_t> dilation_rates;
  bool is_causal;
  bool backward;
  // Workspace from a PoolAllocator over the direct host allocator instead of
  // the direct allocator itself.
  bool pool = false;
};

// Returns the useful floating-point operations of one iteration.
double UsefulFlops(const Workload& w, const AttentionConfig& config) {
  double flops = 0.0;
  for (const kernels::GroupParams& g : PartitionHeads(config, w.num_heads)) {
    const double segments = static_cast<double>(w.seq_len / g.segment_length);
    const double length = static_cast<double>(g.positions);
    flops +=
        4.0 * w.batch * g.num_heads * segments * length * length * w.head_dim;
  }
  if (w.is_causal) flops /= 2;
  if (w.backward) flops *= 3.5;
  return flops;
}

// A float32 [b, n, h, d] tensor filled with uniform values in [-1, 1].
struct Buffer {
  Buffer(const Workload& w, std::mt19937* rng)
      : values(w.batch * w.seq_len * w.num_heads * w.head_dim) {
    std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
    for (float& v : values) v = uniform(*rng);
    view =
        TensorView::Contiguous(values.data(), DType::kFloat32,
                               {w.batch, w.seq_len, w.num_heads, w.head_dim});
  }
  std::vector<float> values;
  TensorView view;
};

void RunAttention(benchmark::State& state, const std::string& name,
                  const Workload& w) {
  AttentionConfig config;
  config.segment_lengths = w.segment_lengths;
  config.dilation_rates = w.dilation_rates;
  absl::StatusOr<std::unique_ptr<Attention>> attention =
      CreateAttention(name, config);
  if (!attention.ok()) {
    state.SkipWithError(std::string(attention.status().message()).c_str());
    return;
  }
  std::mt19937 rng(42);
  Buffer q(w, &rng), k(w, &rng), v(w, &rng), out(w, &rng), grad_out(w, &rng),
      grad_q(w, &rng), grad_k(w, &rng), grad_v(w, &rng);
  std::vector<float> lse_values(w.batch * w.num_heads * w.seq_len);
  const TensorView lse = TensorView::Contiguous(
      lse_values.data(), DType::kFloat32, {w.batch, w.num_heads, w.seq_len});
  memory::HostAllocator host;
  const WorkspaceVariant workspace =
      w.pool ? WorkspaceVariant::Pooled(
                   std::make_unique<memory::PoolAllocator>(&host))
             : WorkspaceVariant::Direct(&host);
  ForwardOptions options;
  options.is_causal = w.is_causal;
  options.workspace_allocator = workspace.allocator();
  auto call = [&]() {
    absl::Status status =
        (*attention)->Forward(q.view, k.view, v.view, out.view, options, &lse);
    if (status.ok() && w.backward) {
      status =
          (*attention)
              ->Backward(q.view, k.view, v.view, out.view, lse, grad_out.view,
                         grad_q.view, grad_k.view, grad_v.view, options);
    }
    return status;
  };

  // One untimed call measures the memory (and warms up).
  const int64_t baseline = heap_tracker::CurrentBytes();
  heap_tracker::ResetPeak();
  absl::Status status = call();
  const int64_t extra_heap_bytes = heap_tracker::PeakBytes() - baseline;
  for (auto _ : state) {
    if (status.ok()) status = call();
    if (!status.ok()) {
      state.SkipWithError(std::string(status.message()).c_str());
      return;
    }
    benchmark::DoNotOptimize(out.values.data());
    benchmark::ClobberMemory();
  }
  state.counters["extra_heap_MiB"] =
      static_cast<double>(extra_heap_bytes) / (1 << 20);
  state.counters["GFLOPs"] =
      benchmark::Counter(UsefulFlops(w, config) * 1e-9,
                         benchmark::Counter::kIsIterationInvariantRate);
  state.counters["tokens_per_s"] =
      benchmark::Counter(static_cast<double>(w.batch * w.seq_len),
                         benchmark::Counter::kIsIterationInvariantRate);
  workspace.ReportCounters(state);
}

std::vector<Workload> Workloads() {
  const std::vector<int64_t> a_segments = {2048, 4096, 8192};
  const std::vector<int64_t> b_segments = {512, 1024, 2048};
  const std::vector<int64_t> rates = {1, 2, 4};
  std::vector<Workload> workloads;
  for (int64_t n : {8192, 32768, 131072}) {
    for (bool causal : {false, true}) {
      for (bool backward : {false, true}) {
        workloads.push_back(
            {"A", 1, n, 8, 64, a_segments, rates, causal, backward});
      }
    }
  }
  for (int64_t n : {2048, 8192}) {
    workloads.push_back({"B", 1, n, 12, 64, b_segments, rates, false, false});
  }
  // The same calls with the workspace pooled (what AttentionConfig's
  // enable_memory_pool selects), to compare in one run.
  for (bool backward : {false, true}) {
    workloads.push_back(
        {"A", 1, 8192, 8, 64, a_segments, rates, false, backward, true});
  }
  workloads.push_back(
      {"B", 1, 2048, 12, 64, b_segments, rates, false, false, true});
  return workloads;
}

void RegisterAll() {
  for (const std::string& name : DilatedAttentionNames()) {
    // On one process "ring" and "distributed" run what "auto" runs, so they
    // would time the same kernel again; their own benchmark, on several
    // ranks, is benchmarks/sequence_parallel_benchmark.
    if (name == "ring" || name == "distributed") continue;
    for (const Workload& w : Workloads()) {
      const std::string label =
          absl::StrCat(name, "/", w.config_name, "/n:", w.seq_len,
                       w.is_causal ? "/causal" : "/full",
                       w.backward ? "/fwd_bwd" : "/fwd", w.pool ? "/pool" : "");
      benchmark::RegisterBenchmark(label.c_str(), RunAttention, name, w)
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime()
          ->MinTime(0.2);
    }
  }
}

}  // namespace
}  // namespace dilated

int main(int argc, char** argv) {
  const absl::StatusOr<std::string> plot_path =
      dilated::TakePlotFlag(&argc, argv);
  if (!plot_path.ok()) {
    std::cerr << plot_path.status().message() << "\n";
    return 1;
  }
  const benchmark::ConsoleReporter::OutputOptions console_options =
      dilated::ConsoleOptionsFromFlags(argc, argv);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  dilated::RegisterAll();
  dilated::SummaryReporter reporter(
      "No PyTorch peer runs in this binary: the comparison with PyTorch is in "
      "docs/PERFORMANCE_CUDA.md\n(benchmarks/gpu/compare.py on the GPU "
      "machine); CPU \"improved\" vs \"standard\" in detail: "
      "docs/PERFORMANCE_CPU.md.",
      console_options);
  benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.PrintSummary(std::cout);
  benchmark::Shutdown();
  if (!plot_path->empty()) {
    const absl::Status status = dilated::WriteSequenceLengthPlot(
        reporter.Results(), {"extra_heap_MiB", "peak extra heap (MiB)"},
        "attention_benchmark: CPU float32, every implementation (shapes: "
        "docs/BASELINES.md)",
        *plot_path);
    if (!status.ok()) {
      std::cerr << status.message() << "\n";
      return 1;
    }
    std::cout << "plot: " << *plot_path << "\n";
  }
  return 0;
}
