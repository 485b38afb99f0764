// "block_sparse" and "longnet" on CPU tensors (float32, b = 1, h = 8,
// d = 64), each side by side with its peer in one run:
//
// - BlockSparse/<layout>: block 128 at n = 8K and 16K, layouts local_window
//   (window 512 and 1024), dilated_sparse (rates 1, 2, 4) and "full" (every
//   block active: the dense masked peer through the same kernel), forward and
//   forward + backward. Dense/improved is the dense fused kernel of
//   "improved" (one segment of n, rate 1). Counters: density (active blocks
//   / nb^2) and useful FLOP/s on the active blocks (4 b h active bs^2 d per
//   forward, 3.5x with backward; halved when causal on the dense peer only,
//   since causal block layouts count their blocks).
// - LongNet/merged against LongNet/branches: "longnet" (config A: segments
//   2048, 4096, 8192; rates 1, 2, 4; n = 8K and 32K) against the same
//   branches run by the fused kernel without the merge; merged_pool takes
//   the branches' buffers from the attention's memory pool.
//
//   ./bazelw build -c opt //benchmarks:sparse_attention_benchmark
//   OMP_NUM_THREADS=2 bazel-bin/benchmarks/sparse_attention_benchmark

#include <omp.h>

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "attention/block_layout.h"
#include "attention/longnet.h"
#include "attention/params_builder.h"
#include "attention/registry.h"
#include "benchmark/benchmark.h"
#include "kernels/cpu/flash_attention.h"
#include "kernels/cpu/row_io.h"

namespace dilated {
namespace {

constexpr int64_t kHeads = 8;
constexpr int64_t kHeadDim = 64;
constexpr int64_t kBlock = 128;

// A float32 [1, n, h, d] tensor filled with uniform values in [-1, 1].
struct Buffer {
  Buffer(int64_t seq_len, std::mt19937* rng)
      : values(seq_len * kHeads * kHeadDim) {
    std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
    for (float& v : values) v = uniform(*rng);
    view = TensorView::Contiguous(values.data(), DType::kFloat32,
                                  {1, seq_len, kHeads, kHeadDim});
  }
  std::vector<float> values;
  TensorView view;
};

// Times Forward (and Backward) of `attention` at n = seq_len.
void TimeCalls(benchmark::State& state, Attention& attention, int64_t seq_len,
               bool is_causal, bool backward, double forward_flops) {
  std::mt19937 rng(42);
  Buffer q(seq_len, &rng), k(seq_len, &rng), v(seq_len, &rng),
      out(seq_len, &rng), grad_out(seq_len, &rng), grad_q(seq_len, &rng),
      grad_k(seq_len, &rng), grad_v(seq_len, &rng);
  std::vector<float> lse_values(kHeads * seq_len);
  const TensorView lse = TensorView::Contiguous(
      lse_values.data(), DType::kFloat32, {1, kHeads, seq_len});
  ForwardOptions options;
  options.is_causal = is_causal;
  for (auto _ : state) {
    absl::Status status =
        attention.Forward(q.view, k.view, v.view, out.view, options, &lse);
    if (status.ok() && backward) {
      status = attention.Backward(q.view, k.view, v.view, out.view, lse,
                                  grad_out.view, grad_q.view, grad_k.view,
                                  grad_v.view, options);
    }
    if (!status.ok()) {
      state.SkipWithError(std::string(status.message()).c_str());
      return;
    }
    benchmark::DoNotOptimize(out.values.data());
    benchmark::ClobberMemory();
  }
  state.counters["GFLOPs"] =
      benchmark::Counter(forward_flops * (backward ? 3.5 : 1.0) * 1e-9,
                         benchmark::Counter::kIsIterationInvariantRate);
  state.counters["threads"] = omp_get_max_threads();
}

struct Layout {
  std::string name;
  BlockSparseConfig config;
};

std::vector<Layout> Layouts(int64_t seq_len) {
  std::vector<Layout> layouts;
  for (int64_t window : {512, 1024}) {
    BlockSparseConfig c;
    c.pattern = BlockPattern::kLocalWindow;
    c.block_size = kBlock;
    c.window = window;
    layouts.push_back({absl::StrCat("local_window_", window), c});
  }
  BlockSparseConfig dilated;
  dilated.pattern = BlockPattern::kDilatedSparse;
  dilated.block_size = kBlock;
  layouts.push_back({"dilated_sparse", dilated});
  BlockSparseConfig full;
  full.pattern = BlockPattern::kCustom;
  full.block_size = kBlock;
  const int64_t nb = seq_len / kBlock;
  full.custom_layout = {1, nb, std::vector<uint8_t>(nb * nb, 1)};
  layouts.push_back({"full", full});
  return layouts;
}

void RunBlockSparse(benchmark::State& state, const Layout& layout,
                    int64_t seq_len, bool backward) {
  AttentionConfig config;
  config.block_sparse = layout.config;
  absl::StatusOr<std::unique_ptr<Attention>> attention =
      CreateAttention("block_sparse", config);
  absl::StatusOr<BlockLayout> blocks =
      BuildBlockLayout(layout.config, seq_len, kHeads);
  if (!attention.ok() || !blocks.ok()) {
    state.SkipWithError("bad block-sparse configuration");
    return;
  }
  const double active = static_cast<double>(blocks->CountActive());
  const double nb = static_cast<double>(blocks->num_blocks);
  TimeCalls(state, **attention, seq_len, /*is_causal=*/false, backward,
            4.0 * kHeads * active * kBlock * kBlock * kHeadDim);
  state.counters["density"] = active / (nb * nb);
}

void RunDenseImproved(benchmark::State& state, int64_t seq_len, bool backward) {
  AttentionConfig config;
  config.segment_lengths = {seq_len};
  config.dilation_rates = {1};
  absl::StatusOr<std::unique_ptr<Attention>> attention =
      CreateAttention("improved", config);
  if (!attention.ok()) {
    state.SkipWithError(std::string(attention.status().message()).c_str());
    return;
  }
  const double n = static_cast<double>(seq_len);
  TimeCalls(state, **attention, seq_len, /*is_causal=*/false, backward,
            4.0 * kHeads * n * n * kHeadDim);
  state.counters["density"] = 1.0;
}

AttentionConfig ConfigA() {
  AttentionConfig config;
  config.segment_lengths = {2048, 4096, 8192};
  config.dilation_rates = {1, 2, 4};
  return config;
}

// With `pool`, workspace (the branches' outputs) comes from the attention's
// host pool (AttentionConfig::enable_memory_pool) instead of fresh pages.
void RunLongNetMerged(benchmark::State& state, int64_t seq_len, bool pool) {
  AttentionConfig config = ConfigA();
  config.enable_memory_pool = pool;
  absl::StatusOr<std::unique_ptr<Attention>> attention =
      CreateAttention("longnet", config);
  if (!attention.ok()) {
    state.SkipWithError(std::string(attention.status().message()).c_str());
    return;
  }
  TimeCalls(state, **attention, seq_len, /*is_causal=*/false,
            /*backward=*/false, 0.0);
}

// The branches of "longnet" alone: one fused kernel call per branch into its
// own output and lse, no merge.
void RunLongNetBranches(benchmark::State& state, int64_t seq_len) {
  const AttentionConfig config = ConfigA();
  std::mt19937 rng(42);
  Buffer q(seq_len, &rng), k(seq_len, &rng), v(seq_len, &rng);
  std::vector<Buffer> outs;
  std::vector<std::vector<float>> lses;
  for (int i = 0; i < config.num_groups(); ++i) {
    outs.emplace_back(seq_len, &rng);
    lses.emplace_back(kHeads * seq_len);
  }
  std::vector<float> lse_values(kHeads * seq_len);
  const TensorView lse = TensorView::Contiguous(
      lse_values.data(), DType::kFloat32, {1, kHeads, seq_len});
  absl::StatusOr<kernels::ForwardParams> base = MakeForwardParams(
      config, q.view, k.view, v.view, outs[0].view, &lse, ForwardOptions());
  if (!base.ok()) {
    state.SkipWithError(std::string(base.status().message()).c_str());
    return;
  }
  std::vector<kernels::ForwardParams> branches;
  for (int i = 0; i < config.num_groups(); ++i) {
    kernels::ForwardParams p = *base;
    const std::vector<kernels::GroupParams> groups = LongNetBranchGroups(
        config.segment_lengths[i], config.dilation_rates[i], kHeads);
    p.num_groups = static_cast<int32_t>(groups.size());
    for (size_t g = 0; g < groups.size(); ++g) p.groups[g] = groups[g];
    p.output_scale = 1.0f;
    p.out.data = outs[i].values.data();
    p.lse = lses[i].data();
    branches.push_back(p);
  }
  const int threads = kernels::cpu::MaxThreads();
  int64_t per_thread = 0;
  for (const kernels::ForwardParams& p : branches) {
    per_thread =
        std::max(per_thread, kernels::cpu::FlashForwardWorkspacePerThread(p));
  }
  std::vector<float> workspace(threads * per_thread + 16);
  float* aligned = reinterpret_cast<float*>(
      (reinterpret_cast<uintptr_t>(workspace.data()) + 63) / 64 * 64);
  for (auto _ : state) {
    for (const kernels::ForwardParams& p : branches) {
      kernels::cpu::FlashForward(p, aligned, threads);
    }
    benchmark::ClobberMemory();
  }
  state.counters["threads"] = omp_get_max_threads();
}

void RegisterAll() {
  for (int64_t seq_len : {8192, 16384}) {
    for (bool backward : {false, true}) {
      const std::string suffix =
          absl::StrCat("/n:", seq_len, backward ? "/fwd_bwd" : "/fwd");
      for (const Layout& layout : Layouts(seq_len)) {
        benchmark::RegisterBenchmark(
            ("BlockSparse/" + layout.name + suffix).c_str(),
            [layout, seq_len, backward](benchmark::State& state) {
              RunBlockSparse(state, layout, seq_len, backward);
            })
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime()
            ->MinTime(0.5);
      }
      benchmark::RegisterBenchmark(
          ("Dense/improved" + suffix).c_str(),
          [seq_len, backward](benchmark::State& state) {
            RunDenseImproved(state, seq_len, backward);
          })
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime()
          ->MinTime(0.5);
    }
  }
  for (int64_t seq_len : {8192, 32768}) {
    const std::string suffix = absl::StrCat("/n:", seq_len, "/fwd");
    for (bool pool : {false, true}) {
      benchmark::RegisterBenchmark(
          ((pool ? "LongNet/merged_pool" : "LongNet/merged") + suffix).c_str(),
          [seq_len, pool](benchmark::State& state) {
            RunLongNetMerged(state, seq_len, pool);
          })
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime()
          ->MinTime(0.5);
    }
    benchmark::RegisterBenchmark(("LongNet/branches" + suffix).c_str(),
                                 [seq_len](benchmark::State& state) {
                                   RunLongNetBranches(state, seq_len);
                                 })
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime()
        ->MinTime(0.5);
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
