// "improved" against "standard" (and any other CPU backend) on CPU tensors
// over the configurations of docs/BASELINES.md: config A (segments 2048,
// 4096, 8192; rates 1, 2, 4; b = 1, h = 8, d = 64) at n = 8K, 32K, 128K and
// config B (segments 512, 1024, 2048; rates 1, 2, 4; b = 1, h = 12, d = 64)
// at n = 2K, 8K; causal and not; forward and forward + backward; float32,
// bfloat16 and float16 (the last part of a case's name: fp32, bf16, fp16);
// and config A at n = 32K with attention dropout 0.1 (names ending in
// /dropout:0.1), whose cost is read against the same case without it.
//
// Counters: GFLOPs, useful FLOP/s with the FlashAttention convention of
// docs/BASELINES.md section 1 (forward = 4 * b * g * (n / s) * L^2 * d per
// group, halved when causal; forward + backward = 3.5 x forward); extra_MiB,
// the peak heap above what was held before the call (inputs and outputs are
// allocated before);
// out_MiB, the size of the output for comparison; threads, the OpenMP threads.
// The CPU column of the attention cases is the CPU time of the whole process
// (every thread): on a machine shared with other work, CPU / threads tracks
// what the wall time would be alone.
// "fma_peak" measures the FMA ceiling of the same threads (AVX2, float32),
// "fma_peak_avx512" the 16-lane one where the CPU has AVX-512: on CPUs with
// two 512-bit FMA pipes it is twice fma_peak, and the AVX-512 step of
// "improved" is read against it. "dpbf16_peak_avx512", where the CPU has
// AVX512-BF16, runs the same chains as bfloat16 dot products (VDPBF16PS).
// "amx_peak", registered where the CPU has
// AMX (cpu_path.h), measures the bfloat16 tile-product ceiling (TDPBF16PS on
// resident tiles), against which the bf16 and fp16 cases of the AMX path
// are read.
// The context line cpu_path names the instruction set of the fused kernels
// (kernels/cpu/cpu_path.h): amx or avx512 where the CPU has it, unless
// DILATED_CPU_PATH=avx2 or =avx512 is set.
//
//   ./bazelw build -c opt //benchmarks:cpu_attention_benchmark
//   OMP_NUM_THREADS=2 bazel-bin/benchmarks/cpu_attention_benchmark
//       --benchmark_filter='/A/n:32768/' --benchmark_repetitions=5

#include <immintrin.h>
#include <omp.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "attention/backend_registry.h"
#include "attention/params_builder.h"
#include "attention/registry.h"
#include "benchmark/benchmark.h"
#include "benchmarks/heap_tracker.h"
#include "kernels/cpu/cpu_path.h"
#include "kernels/numeric.h"

namespace dilated {
namespace {

struct Workload {
  std::string config_name;  // "A" or "B", as in docs/BASELINES.md.
  int64_t seq_len;
  int64_t num_heads;
  std::vector<int64_t> segment_lengths;
  bool is_causal;
  bool backward;
  DType dtype;
  // Attention dropout in training mode (docs/DROPOUT.md); 0: none.
  double dropout = 0.0;
};

// Returns the dtype's part of a case name.
const char* DTypeLabel(DType dtype) {
  switch (dtype) {
    case DType::kBFloat16:
      return "bf16";
    case DType::kFloat16:
      return "fp16";
    default:
      break;
  }
  return "fp32";
}

constexpr int64_t kHeadDim = 64;
const std::vector<int64_t>& Rates() {
  static const auto* rates = new std::vector<int64_t>{1, 2, 4};
  return *rates;
}

// Returns the useful floating-point operations of one iteration.
double UsefulFlops(const Workload& w, const AttentionConfig& config) {
  double flops = 0.0;
  for (const kernels::GroupParams& g : PartitionHeads(config, w.num_heads)) {
    const double segments = static_cast<double>(w.seq_len / g.segment_length);
    const double length = static_cast<double>(g.positions);
    flops += 4.0 * g.num_heads * segments * length * length * kHeadDim;
  }
  if (w.is_causal) flops /= 2;
  if (w.backward) flops *= 3.5;
  return flops;
}

// A [1, n, h, d] tensor of the workload's dtype filled with uniform values
// in [-1, 1].
struct Buffer {
  Buffer(const Workload& w, std::mt19937* rng)
      : elements(w.seq_len * w.num_heads * kHeadDim),
        bytes(elements * DTypeSize(w.dtype)) {
    std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
    for (int64_t i = 0; i < elements; ++i) {
      const float x = uniform(*rng);
      if (w.dtype == DType::kFloat32) {
        std::memcpy(bytes.data() + 4 * i, &x, 4);
        continue;
      }
      const uint16_t h = w.dtype == DType::kBFloat16
                             ? kernels::FloatToBFloat16(x)
                             : kernels::FloatToHalf(x);
      std::memcpy(bytes.data() + 2 * i, &h, 2);
    }
    view = TensorView::Contiguous(bytes.data(), w.dtype,
                                  {1, w.seq_len, w.num_heads, kHeadDim});
  }
  int64_t elements;
  std::vector<unsigned char> bytes;
  TensorView view;
};

void RunAttention(benchmark::State& state, const std::string& name,
                  const Workload& w) {
  AttentionConfig config;
  config.segment_lengths = w.segment_lengths;
  config.dilation_rates = Rates();
  config.dropout = w.dropout;
  absl::StatusOr<std::unique_ptr<Attention>> attention =
      CreateAttention(name, config);
  if (!attention.ok()) {
    state.SkipWithError(std::string(attention.status().message()).c_str());
    return;
  }
  std::mt19937 rng(42);
  Buffer q(w, &rng), k(w, &rng), v(w, &rng), out(w, &rng), grad_out(w, &rng),
      grad_q(w, &rng), grad_k(w, &rng), grad_v(w, &rng);
  std::vector<float> lse_values(w.num_heads * w.seq_len);
  const TensorView lse = TensorView::Contiguous(
      lse_values.data(), DType::kFloat32, {1, w.num_heads, w.seq_len});
  ForwardOptions options;
  options.is_causal = w.is_causal;
  options.training = w.dropout > 0.0;
  options.dropout_seed = 1;
  int64_t extra_bytes = 0;
  for (auto _ : state) {
    const int64_t baseline = heap_tracker::CurrentBytes();
    heap_tracker::ResetPeak();
    absl::Status status =
        (*attention)->Forward(q.view, k.view, v.view, out.view, options, &lse);
    if (status.ok() && w.backward) {
      status =
          (*attention)
              ->Backward(q.view, k.view, v.view, out.view, lse, grad_out.view,
                         grad_q.view, grad_k.view, grad_v.view, options);
    }
    extra_bytes = std::max(extra_bytes, heap_tracker::PeakBytes() - baseline);
    if (!status.ok()) {
      state.SkipWithError(std::string(status.message()).c_str());
      return;
    }
    benchmark::DoNotOptimize(out.bytes.data());
    benchmark::ClobberMemory();
  }
  constexpr double kMiB = 1024.0 * 1024.0;
  state.counters["GFLOPs"] =
      benchmark::Counter(UsefulFlops(w, config) * 1e-9,
                         benchmark::Counter::kIsIterationInvariantRate);
  state.counters["extra_MiB"] = static_cast<double>(extra_bytes) / kMiB;
  state.counters["out_MiB"] = static_cast<double>(out.bytes.size()) / kMiB;
  state.counters["threads"] = omp_get_max_threads();
}

// The machine's float32 FMA peak with the kernels' instruction set (AVX2 +
// FMA, 8 lanes): on every OpenMP thread, 10 independent chains of register
// FMAs, enough to fill two FMA pipes of latency 4 or 5. The ceiling against
// which the attention GFLOPs are read.
__attribute__((target("avx2,fma"))) float FmaChains(int64_t iterations) {
  __m256 x[10];
#pragma GCC unroll 10
  for (int i = 0; i < 10; ++i) x[i] = _mm256_set1_ps(0.01f * i);
  const __m256 a = _mm256_set1_ps(0.9999f);
  const __m256 b = _mm256_set1_ps(0.0001f);
  for (int64_t it = 0; it < iterations; ++it) {
#pragma GCC unroll 10
    for (int i = 0; i < 10; ++i) x[i] = _mm256_fmadd_ps(x[i], a, b);
    // Keeps the chains in registers and the loop from being folded.
    asm volatile(""
                 : "+x"(x[0]), "+x"(x[1]), "+x"(x[2]), "+x"(x[3]), "+x"(x[4]),
                   "+x"(x[5]), "+x"(x[6]), "+x"(x[7]), "+x"(x[8]), "+x"(x[9]));
  }
  float sum = 0.0f;
#pragma GCC unroll 10
  for (int i = 0; i < 10; ++i) sum += x[i][0];
  return sum;
}

// Ten 16-lane chains (AVX-512F): their start values, the statement that
// keeps them in registers and the loop from being folded, their sum.
#define DA_CHAINS512_TARGET __attribute__((target("avx512f"), always_inline))
DA_CHAINS512_TARGET inline void StartChains512(__m512 (&x)[10]) {
#pragma GCC unroll 10
  for (int i = 0; i < 10; ++i) x[i] = _mm512_set1_ps(0.01f * i);
}

DA_CHAINS512_TARGET inline void PinChains512(__m512 (&x)[10]) {
  asm volatile(""
               : "+v"(x[0]), "+v"(x[1]), "+v"(x[2]), "+v"(x[3]), "+v"(x[4]),
                 "+v"(x[5]), "+v"(x[6]), "+v"(x[7]), "+v"(x[8]), "+v"(x[9]));
}

DA_CHAINS512_TARGET inline float SumChains512(const __m512 (&x)[10]) {
  float sum = 0.0f;
#pragma GCC unroll 10
  for (int i = 0; i < 10; ++i) sum += x[i][0];
  return sum;
}
#undef DA_CHAINS512_TARGET

// The same chains on 16-lane AVX-512 registers (call only where the CPU has
// AVX-512F).
__attribute__((target("avx512f"))) float FmaChainsAvx512(int64_t iterations) {
  __m512 x[10];
  StartChains512(x);
  const __m512 a = _mm512_set1_ps(0.9999f);
  const __m512 b = _mm512_set1_ps(0.0001f);
  for (int64_t it = 0; it < iterations; ++it) {
#pragma GCC unroll 10
    for (int i = 0; i < 10; ++i) x[i] = _mm512_fmadd_ps(x[i], a, b);
    PinChains512(x);
  }
  return SumChains512(x);
}

// The same chains as bfloat16 dot products (VDPBF16PS: per lane, two
// products of bfloat16 pairs added to a float32 sum; call only where the CPU
// has AVX512-BF16). Without AMX, this is the only bfloat16 product the CPU
// has; where it multiplies no faster than float32 FMAs (half their rate on
// the Xeon of docs/PERFORMANCE_CPU.md), the 16-bit dtypes keep the float32
// path (cpu_path.h).
__attribute__((target("avx512f,avx512bf16"))) float DotBf16Chains(
    int64_t iterations) {
  __m512 x[10];
  StartChains512(x);
  // Pairs of bfloat16 1.0 and 2^-14: the sums grow slowly and stay normal.
  const __m512bh a = reinterpret_cast<__m512bh>(_mm512_set1_epi32(0x3f803f80));
  const __m512bh b = reinterpret_cast<__m512bh>(_mm512_set1_epi32(0x38803880));
  for (int64_t it = 0; it < iterations; ++it) {
#pragma GCC unroll 10
    for (int i = 0; i < 10; ++i) x[i] = _mm512_dpbf16_ps(x[i], a, b);
    PinChains512(x);
  }
  return SumChains512(x);
}

// Runs `chains` (10 chains of `lanes`-wide FMAs per iteration) on every
// OpenMP thread and reports the GFLOP/s of all threads together.
void RunFmaPeak(benchmark::State& state, float (*chains)(int64_t), int lanes) {
  constexpr int64_t kIterations = 10000000;
  int threads = 1;
  for (auto _ : state) {
#pragma omp parallel
    {
#pragma omp single
      threads = omp_get_num_threads();
      benchmark::DoNotOptimize(chains(kIterations));
    }
  }
  // 10 chains x `lanes` lanes x 2 FLOP per iteration and thread.
  state.counters["GFLOPs"] =
      benchmark::Counter(20.0 * lanes * kIterations * threads * 1e-9,
                         benchmark::Counter::kIsIterationInvariantRate);
  state.counters["threads"] = threads;
}

// The bfloat16 tile-product ceiling (call only where CpuHasAmx()): on every
// OpenMP thread, four accumulator tiles (16 x 16 float32) fed by two A and two
// B tiles that stay in the tile registers, the 2 x 2 blocking of the AMX
// kernels, in a loop of 4 TDPBF16PS per iteration.
__attribute__((target("amx-tile,amx-bf16"))) float TileProducts(
    int64_t iterations) {
  struct alignas(64) {
    uint8_t palette_id = 1;
    uint8_t start_row = 0;
    uint8_t reserved[14] = {};
    uint16_t colsb[16] = {64, 64, 64, 64, 64, 64, 64, 64};
    uint8_t rows[16] = {16, 16, 16, 16, 16, 16, 16, 16};
  } config;
  alignas(64) uint16_t ones[16 * 32];
  for (uint16_t& x : ones) x = kernels::FloatToBFloat16(1e-3f);
  alignas(64) float c[16 * 16];
  _tile_loadconfig(&config);
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  _tile_loadd(4, ones, 64);
  _tile_loadd(5, ones, 64);
  _tile_loadd(6, ones, 64);
  _tile_loadd(7, ones, 64);
  for (int64_t it = 0; it < iterations; ++it) {
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  _tile_stored(0, c, 64);
  _tile_release();
  return c[0];
}

// Runs TileProducts on every OpenMP thread and reports the GFLOP/s of all
// threads together.
void RunTilePeak(benchmark::State& state) {
  constexpr int64_t kIterations = 1000000;
  // 4 products of (16 x 32) by (32 x 16), 2 FLOP per multiply-add.
  constexpr double kFlopsPerIteration = 4.0 * 16 * 16 * 32 * 2;
  int threads = 1;
  for (auto _ : state) {
#pragma omp parallel
    {
#pragma omp single
      threads = omp_get_num_threads();
      benchmark::DoNotOptimize(TileProducts(kIterations));
    }
  }
  state.counters["GFLOPs"] =
      benchmark::Counter(kFlopsPerIteration * kIterations * threads * 1e-9,
                         benchmark::Counter::kIsIterationInvariantRate);
  state.counters["threads"] = threads;
}

std::vector<Workload> Workloads() {
  std::vector<Workload> workloads;
  for (DType dtype : {DType::kFloat32, DType::kBFloat16, DType::kFloat16}) {
    for (int64_t n : {8192, 32768, 131072}) {
      for (bool causal : {false, true}) {
        for (bool backward : {false, true}) {
          workloads.push_back(
              {"A", n, 8, {2048, 4096, 8192}, causal, backward, dtype});
        }
      }
    }
    for (int64_t n : {2048, 8192}) {
      for (bool causal : {false, true}) {
        for (bool backward : {false, true}) {
          workloads.push_back(
              {"B", n, 12, {512, 1024, 2048}, causal, backward, dtype});
        }
      }
    }
  }
  // The cost of dropout: config A at n = 32K, against the same cases
  // without it.
  for (DType dtype : {DType::kFloat32, DType::kBFloat16}) {
    for (bool backward : {false, true}) {
      workloads.push_back(
          {"A", 32768, 8, {2048, 4096, 8192}, false, backward, dtype, 0.1});
    }
  }
  return workloads;
}

void RegisterAll() {
  benchmark::RegisterBenchmark("fma_peak", RunFmaPeak, &FmaChains, 8)
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
  if (kernels::cpu::CpuHasAvx512()) {
    benchmark::RegisterBenchmark("fma_peak_avx512", RunFmaPeak,
                                 &FmaChainsAvx512, 16)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  }
  if (kernels::cpu::CpuHasAvx512() && __builtin_cpu_supports("avx512bf16")) {
    // Two multiply-adds per lane and instruction: counted as 32 lanes.
    benchmark::RegisterBenchmark("dpbf16_peak_avx512", RunFmaPeak,
                                 &DotBf16Chains, 32)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  }
  if (kernels::cpu::CpuHasAmx()) {
    benchmark::RegisterBenchmark("amx_peak", RunTilePeak)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  }
  for (const Workload& w : Workloads()) {
    for (const std::string& name : BackendNames(DeviceType::kCpu)) {
      const std::string label = absl::StrCat(
          name, "/", w.config_name, "/n:", w.seq_len,
          w.is_causal ? "/causal" : "/full", w.backward ? "/fwd_bwd" : "/fwd",
          "/", DTypeLabel(w.dtype),
          w.dropout > 0.0 ? absl::StrCat("/dropout:", w.dropout) : "");
      benchmark::RegisterBenchmark(label.c_str(), RunAttention, name, w)
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime()
          ->MeasureProcessCPUTime()
          ->MinTime(0.5);
    }
  }
}

}  // namespace
}  // namespace dilated

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("cpu_path",
                              dilated::kernels::cpu::CpuPathName(
                                  dilated::kernels::cpu::ActiveCpuPath()));
  dilated::RegisterAll();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
