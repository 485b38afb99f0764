// Times alternative tile shapes of the fused kernels
// (cuda_tile_sweep_kernels.h) on config A (b=1, h=8, segments
// 2048/4096/8192, rates 1/2/4, float16) at n = 1M, causal and not, with
// head_dim 64, 128 and 256, so that one run on the GPU machine picks the shapes
// kernels/cuda/flash_configs.cuh ships. CUDA-event timing (UseManualTime);
// blocks_per_SM is what the occupancy calculator gives the kernel (launch
// bounds, registers, shared memory); TFLOPs counts the kernel's own useful work
// max_diff is the largest difference of a forward variant's output from
// the first mma.sync variant's of its head_dim, and of a fused backward's
// gradients from the shipped two-kernel backward's (the sweep's correctness
// check for kernels not yet shipped);
// (forward: the forward FLOPs of docs/BASELINES.md section 1; key/value side: 4
// products = 2x forward, "dV only" 2 = 1x, "dK only" 3 = 1.5x; query side: 3
// products = 1.5x forward; fused "kvq":
// 5 products = 2.5x forward, its float32 dQ zeroed and rounded included).
// The "sparse fwd" variants walk a block-sparse layout of the library's
// builders over the whole sequence instead (blocks of 128: local_window 512
// to 4096, dilated_sparse), their max_diff taken against the library's
// FlashBlockSparseForward and their TFLOPs counting the active blocks only.
//
//   bazel run -c opt --config=cuda //benchmarks:cuda_tile_sweep

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "attention/block_layout.h"
#include "attention/block_lists.h"
#include "attention/block_lists_cuda.h"
#include "attention/config.h"
#include "attention/params_builder.h"
#include "attention/tensor.h"
#include "benchmark/benchmark.h"
#include "benchmarks/cuda_tile_sweep_kernels.h"
#include "kernels/cuda/flash_attention.h"
#include "kernels/numeric.h"

namespace dilated {
namespace {

void Check(cudaError_t error, const char* what) {
  if (error != cudaSuccess) {
    std::fprintf(stderr, "%s: %s\n", what, cudaGetErrorString(error));
    std::abort();
  }
}

constexpr int64_t kSeq = 1 << 20;
constexpr int64_t kHeads = 8;

double ForwardFlops(int64_t head_dim, bool causal) {
  // Config A: groups of 3, 3, 2 heads, 2048 positions per segment.
  const double per_head_group[3] = {3.0 * kSeq / 2048, 3.0 * kSeq / 4096,
                                    2.0 * kSeq / 8192};
  double flops = 0.0;
  for (double sequences : per_head_group) {
    flops += 4.0 * sequences * 2048.0 * 2048.0 * head_dim;
  }
  return causal ? flops / 2 : flops;
}

// Inputs of one head_dim, shared by every variant.
struct Problem {
  int64_t head_dim;
  void* buffers[8];  // q, k, v, out, grad_out, grad_q, grad_k, grad_v
  float* lse;
  float* delta;
  void* expected_out[2];  // non-causal, causal; null until computed
};

size_t TensorBytes(const Problem& problem) {
  return kSeq * kHeads * problem.head_dim * 2;
}

// Every buffer holds the same normal(0, 1) values: a block of at most 2^24
// of them, repeated (drawing billions on the host would dominate the run).
Problem* MakeProblem(int64_t head_dim) {
  auto* problem = new Problem{head_dim, {}, nullptr, nullptr, {}};
  const size_t bytes = kSeq * kHeads * head_dim * 2;
  const size_t block_bytes = std::min<size_t>(bytes, size_t{1} << 25);
  std::vector<uint16_t> host(block_bytes / 2);
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (uint16_t& x : host) x = kernels::FloatToHalf(normal(rng));
  for (void*& buffer : problem->buffers) {
    Check(cudaMalloc(&buffer, bytes), "cudaMalloc");
    for (size_t offset = 0; offset < bytes; offset += block_bytes) {
      Check(cudaMemcpy(static_cast<char*>(buffer) + offset, host.data(),
                       std::min(block_bytes, bytes - offset),
                       cudaMemcpyHostToDevice),
            "cudaMemcpy");
    }
  }
  Check(cudaMalloc(reinterpret_cast<void**>(&problem->lse), kSeq * kHeads * 4),
        "cudaMalloc");
  Check(
      cudaMalloc(reinterpret_cast<void**>(&problem->delta), kSeq * kHeads * 4),
      "cudaMalloc");
  return problem;
}

// The problem's params under `config` (by default config A: segments 2048,
// 4096, 8192 at rates 1, 2, 4).
kernels::BackwardParams Params(const Problem& problem, bool causal,
                               const AttentionConfig& config = {}) {
  const Device device = Device::Cuda(0);
  auto view = [&](int i) {
    return TensorView::Contiguous(problem.buffers[i], DType::kFloat16,
                                  {1, kSeq, kHeads, problem.head_dim}, device);
  };
  const TensorView lse = TensorView::Contiguous(problem.lse, DType::kFloat32,
                                                {1, kHeads, kSeq}, device);
  ForwardOptions options;
  options.is_causal = causal;
  absl::StatusOr<kernels::BackwardParams> params =
      MakeBackwardParams(config, view(0), view(1), view(2), view(3), lse,
                         view(4), view(5), view(6), view(7), options);
  if (!params.ok()) {
    std::fprintf(stderr, "%s\n", params.status().ToString().c_str());
    std::abort();
  }
  return *params;
}

template <class F>
void Time(benchmark::State& state, F run) {
  cudaEvent_t start, stop;
  Check(cudaEventCreate(&start), "cudaEventCreate");
  Check(cudaEventCreate(&stop), "cudaEventCreate");
  Check(run(), "warm-up launch");
  Check(cudaDeviceSynchronize(), "warm-up");
  for (auto _ : state) {
    Check(cudaEventRecord(start), "cudaEventRecord");
    Check(run(), "launch");
    Check(cudaEventRecord(stop), "cudaEventRecord");
    Check(cudaEventSynchronize(stop), "cudaEventSynchronize");
    float ms = 0.0f;
    Check(cudaEventElapsedTime(&ms, start, stop), "cudaEventElapsedTime");
    state.SetIterationTime(ms / 1e3);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
}

// A block-sparse layout of the library's builders over the whole sequence
// (blocks of kSparseBlock tokens, one layout for every head), its lists on
// the device.
struct SparseLayout {
  kernels::BlockLists lists;
  // Active (query block, key block) pairs of one head.
  int64_t active_blocks;
};

constexpr int64_t kSparseBlock = 128;

// The layouts the "sparse fwd" variants run on: local_window with each
// window (5, 9, 17, 25 and 33 key blocks a row: 25 lies just past the
// forward's change of tile at 24) and dilated_sparse (blocks i, i +- 1,
// i +- 2, i +- 4: 7 a row).
struct SparseCase {
  const char* name;
  BlockPattern pattern;
  int64_t window;
};
constexpr SparseCase kSparseCases[] = {
    {"local_window 512", BlockPattern::kLocalWindow, 512},
    {"local_window 1024", BlockPattern::kLocalWindow, 1024},
    {"local_window 2048", BlockPattern::kLocalWindow, 2048},
    {"local_window 3072", BlockPattern::kLocalWindow, 3072},
    {"local_window 4096", BlockPattern::kLocalWindow, 4096},
    {"dilated_sparse", BlockPattern::kDilatedSparse, 0},
};

// Returns the layout of `sparse_case`, built and copied to the device on
// first use and kept for the run.
const SparseLayout& LayoutOf(const SparseCase& sparse_case) {
  static auto* made =
      new std::vector<std::pair<const SparseCase*, const SparseLayout*>>();
  for (const auto& [which, layout] : *made) {
    if (which == &sparse_case) return *layout;
  }
  BlockSparseConfig config;
  config.block_size = kSparseBlock;
  config.pattern = sparse_case.pattern;
  if (sparse_case.window > 0) config.window = sparse_case.window;
  absl::StatusOr<BlockLayout> layout =
      BuildBlockLayout(config, kSeq, /*num_heads=*/kHeads);
  if (!layout.ok()) {
    std::fprintf(stderr, "%s\n", layout.status().ToString().c_str());
    std::abort();
  }
  auto* storage = new BlockListStorage(*layout, kSparseBlock);
  absl::StatusOr<kernels::BlockLists> lists =
      DeviceBlockLists(*storage, /*device_index=*/0);
  if (!lists.ok()) {
    std::fprintf(stderr, "%s\n", lists.status().ToString().c_str());
    std::abort();
  }
  const auto* made_layout =
      new SparseLayout{*lists, storage->active_blocks() / layout->heads};
  made->emplace_back(&sparse_case, made_layout);
  return *made_layout;
}

// Returns the output of the first mma.sync forward variant of the problem's
// head_dim, computed on first use.
const void* ExpectedOut(Problem& problem, bool causal) {
  void*& expected = problem.expected_out[causal ? 1 : 0];
  if (expected != nullptr) return expected;
  const kernels::BackwardParams params = Params(problem, causal);
  for (int i = 0; i < sweep::kNumForwardVariants; ++i) {
    const sweep::ForwardVariant& v = sweep::kForwardVariants[i];
    if (v.head_dim != problem.head_dim || std::strstr(v.name, "wgmma") ||
        std::strstr(v.name, " ws ")) {
      continue;
    }
    Check(v.run(params.forward, nullptr), "reference forward");
    Check(cudaMalloc(&expected, TensorBytes(problem)), "cudaMalloc");
    Check(cudaMemcpy(expected, problem.buffers[3], TensorBytes(problem),
                     cudaMemcpyDeviceToDevice),
          "cudaMemcpy");
    return expected;
  }
  std::fprintf(stderr, "no mma.sync forward variant at head_dim %lld\n",
               static_cast<long long>(problem.head_dim));
  std::abort();
}

void FreeProblem(Problem* problem) {
  for (void* buffer : problem->buffers) cudaFree(buffer);
  for (void* expected : problem->expected_out) cudaFree(expected);
  cudaFree(problem->lse);
  cudaFree(problem->delta);
  delete problem;
}

// The inputs of `head_dim`, made on first use and freed when a variant of
// another head_dim asks for its own: at n = 1M one head_dim's inputs take up
// to 40 GiB (head_dim 256), and those of 64, 128 and 256 together do not
// fit an 80 GB card. Only the head_dims a filter selects take memory.
Problem* ProblemOf(int64_t head_dim) {
  static Problem* problem = nullptr;
  if (problem != nullptr && problem->head_dim != head_dim) {
    FreeProblem(problem);
    problem = nullptr;
  }
  if (problem == nullptr) problem = MakeProblem(head_dim);
  return problem;
}

const sweep::BackwardVariant& BackwardVariantNamed(const char* name) {
  for (int i = 0; i < sweep::kNumBackwardVariants; ++i) {
    if (std::strcmp(sweep::kBackwardVariants[i].name, name) == 0) {
      return sweep::kBackwardVariants[i];
    }
  }
  std::fprintf(stderr, "no backward variant %s\n", name);
  std::abort();
}

// Returns the largest difference of the gradients now in the problem's
// grad_q, grad_k and grad_v from those of the shipped two-kernel backward
// of its head_dim (64 or 128: dK/dV, then dQ), which it then computes.
float GradientDifference(Problem& problem,
                         const kernels::BackwardParams& params, bool causal) {
  const bool d64 = problem.head_dim == 64;
  const char* key_value =
      d64 ? "kv d64 wgmma q128 min1" : "kv d128 wgmma q64 min2";
  const char* query = !d64     ? "q d128 wgmma k64 min2"
                      : causal ? "q d64 wgmma k64 min3"
                               : "q d64 wgmma k128 min2";
  const size_t bytes = TensorBytes(problem);
  void* saved[3];
  for (int i = 0; i < 3; ++i) {
    Check(cudaMalloc(&saved[i], bytes), "cudaMalloc");
    Check(cudaMemcpy(saved[i], problem.buffers[5 + i], bytes,
                     cudaMemcpyDeviceToDevice),
          "cudaMemcpy");
  }
  Check(BackwardVariantNamed(key_value).run(params, problem.delta, nullptr),
        "reference dK/dV");
  Check(BackwardVariantNamed(query).run(params, problem.delta, nullptr),
        "reference dQ");
  float largest = 0.0f;
  for (int i = 0; i < 3; ++i) {
    largest = std::max(
        largest,
        sweep::MaxAbsDifference(saved[i], problem.buffers[5 + i], bytes / 2));
    cudaFree(saved[i]);
  }
  return largest;
}

// Times sparse forward variant `v` on the layout of `sparse_case`; its
// output is compared with the library's block-sparse forward on the same
// layout (which runs one of the variants itself: the shipped tile's
// max_diff is 0 there, and the others' shows how far they are from it).
void TimeSparseForward(benchmark::State& state,
                       const sweep::SparseForwardVariant& v,
                       const SparseCase& sparse_case) {
  Problem& problem = *ProblemOf(v.head_dim);
  const SparseLayout& layout = LayoutOf(sparse_case);
  AttentionConfig whole_sequence;
  whole_sequence.segment_lengths = {kSeq};
  whole_sequence.dilation_rates = {1};
  const kernels::ForwardParams params =
      Params(problem, /*causal=*/false, whole_sequence).forward;
  void* expected = nullptr;
  Check(kernels::gpu::FlashBlockSparseForward(params, layout.lists, nullptr),
        "reference block-sparse forward");
  Check(cudaMalloc(&expected, TensorBytes(problem)), "cudaMalloc");
  Check(cudaMemcpy(expected, problem.buffers[3], TensorBytes(problem),
                   cudaMemcpyDeviceToDevice),
        "cudaMemcpy");
  Time(state, [&] { return v.run(params, layout.lists, nullptr); });
  state.counters["blocks_per_SM"] = v.blocks_per_sm();
  state.counters["max_diff"] = sweep::MaxAbsDifference(
      problem.buffers[3], expected, TensorBytes(problem) / 2);
  cudaFree(expected);
  const double flops = 4.0 * kHeads * layout.active_blocks * kSparseBlock *
                       kSparseBlock * v.head_dim;
  state.counters["TFLOPs"] = benchmark::Counter(
      flops / 1e12, benchmark::Counter::kIsIterationInvariantRate);
}

void RegisterAll() {
  auto problem_for = [](int head_dim) { return ProblemOf(head_dim); };
  for (const SparseCase& sparse_case : kSparseCases) {
    for (int i = 0; i < sweep::kNumSparseForwardVariants; ++i) {
      const sweep::SparseForwardVariant& v = sweep::kSparseForwardVariants[i];
      benchmark::RegisterBenchmark(
          absl::StrCat(v.name, " ", sparse_case.name).c_str(),
          [&v, &sparse_case](benchmark::State& state) {
            TimeSparseForward(state, v, sparse_case);
          })
          ->UseManualTime()
          ->Unit(benchmark::kMillisecond);
    }
  }
  for (bool causal : {false, true}) {
    for (int i = 0; i < sweep::kNumForwardVariants; ++i) {
      const sweep::ForwardVariant& v = sweep::kForwardVariants[i];
      const std::string name = absl::StrCat(v.name, causal ? " causal" : "");
      benchmark::RegisterBenchmark(
          name.c_str(),
          [&v, causal, problem_for](benchmark::State& state) {
            Problem& problem = *problem_for(v.head_dim);
            const void* expected = ExpectedOut(problem, causal);
            const kernels::BackwardParams params = Params(problem, causal);
            Time(state, [&] { return v.run(params.forward, nullptr); });
            state.counters["blocks_per_SM"] = v.blocks_per_sm();
            state.counters["max_diff"] = sweep::MaxAbsDifference(
                problem.buffers[3], expected, TensorBytes(problem) / 2);
            state.counters["TFLOPs"] = benchmark::Counter(
                ForwardFlops(v.head_dim, causal) / 1e12,
                benchmark::Counter::kIsIterationInvariantRate);
          })
          ->UseManualTime()
          ->Unit(benchmark::kMillisecond);
    }
    for (int i = 0; i < sweep::kNumBackwardVariants; ++i) {
      const sweep::BackwardVariant& v = sweep::kBackwardVariants[i];
      const std::string name = absl::StrCat(v.name, causal ? " causal" : "");
      const bool fused = std::strncmp(v.name, "kvq", 3) == 0;
      // "dV only": S^T and dV; "dK only": S^T, dP^T and dK.
      const double products = fused                            ? 2.5
                              : std::strstr(v.name, "dV only") ? 1.0
                              : std::strstr(v.name, "dK only") ? 1.5
                              : v.name[0] == 'k'               ? 2.0
                                                               : 1.5;
      benchmark::RegisterBenchmark(
          name.c_str(),
          [&v, causal, products, fused, problem_for](benchmark::State& state) {
            Problem& problem = *problem_for(v.head_dim);
            const kernels::BackwardParams params = Params(problem, causal);
            // Forward first so that lse (and out) are consistent.
            int forward = 0;
            while (sweep::kForwardVariants[forward].head_dim != v.head_dim) {
              ++forward;
            }
            Check(sweep::kForwardVariants[forward].run(params.forward, nullptr),
                  "forward");
            Check(sweep::RunDelta(params, problem.delta, nullptr), "delta");
            Time(state, [&] { return v.run(params, problem.delta, nullptr); });
            if (fused) {
              state.counters["max_diff"] =
                  GradientDifference(problem, params, causal);
            }
            state.counters["blocks_per_SM"] = v.blocks_per_sm();
            state.counters["TFLOPs"] = benchmark::Counter(
                products * ForwardFlops(v.head_dim, causal) / 1e12,
                benchmark::Counter::kIsIterationInvariantRate);
          })
          ->UseManualTime()
          ->Unit(benchmark::kMillisecond);
    }
  }
}

}  // namespace
}  // namespace dilated

int main(int argc, char** argv) {
  dilated::RegisterAll();
  benchmark::AddCustomContext(
      "wgmma", dilated::kernels::gpu::WgmmaAvailable() ? "available" : "off");
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
