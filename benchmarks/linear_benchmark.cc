// The float32 linear layers of LongNet at the paper's width (d_model 768,
// dim_feedforward 3072) over n = 32768 rows, and over 16 to 256 rows (a few
// tokens, where calls below LinearDirectRows() skip packing the weights:
// kernels/cpu/linear_direct.h): models::Linear on the GEMM of
// kernels/cpu/linear_gemm.h on its AVX-512 path and forced onto its AVX2
// path, on AMX at the reduced matmul precisions "high" and "medium", and
// Eigen's GEMM on the same operands (Linear/eigen, the peer: built for the
// library's x86-64-v3 baseline, AVX2 and FMA, on OpenMP), in one run.
// Counters:
// useful GFLOP/s (2 * rows * in * out per call) of wall time; the CPU
// column is the whole process's (all threads), the measure to trust on a
// shared machine.
//
//   ./bazelw build -c opt //benchmarks:linear_benchmark
//   OMP_NUM_THREADS=2 bazel-bin/benchmarks/linear_benchmark
//   python3 benchmarks/linear_cpu_compare.py --threads 2 --path avx2
//     (this benchmark and PyTorch's F.linear, alternating, in one table)

#include <Eigen/Core>
#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "kernels/cpu/cpu_path.h"
#include "kernels/cpu/linear_gemm.h"
#include "models/init.h"
#include "models/linear.h"
#include "models/tensor.h"

namespace dilated {
namespace models {
namespace {

using kernels::cpu::ActiveCpuPath;
using kernels::cpu::CpuPath;
using kernels::cpu::MatmulPrecision;
using kernels::cpu::SetCpuPath;

Tensor Input(int64_t rows, int64_t features) {
  Tensor x = Tensor::Zeros(DType::kFloat32, {rows, features});
  float* data = x.MutableFloat32();
  uint32_t state = 12345;
  for (int64_t i = 0; i < x.NumElements(); ++i) {
    state = state * 1664525u + 1013904223u;
    data[i] = static_cast<float>(state >> 8) / 8388608.0f - 1.0f;
  }
  return x;
}

void RunLinear(benchmark::State& state, CpuPath path, MatmulPrecision precision,
               int64_t rows, int64_t in, int64_t out) {
  const CpuPath before = ActiveCpuPath();
  if (!SetCpuPath(path)) {
    state.SkipWithError("this CPU lacks the path");
    return;
  }
  kernels::cpu::SetFloat32MatmulPrecision(precision);
  Linear linear(in, out, /*bias=*/true);
  Rng rng(/*seed=*/1);
  linear.Reset(/*gain=*/1.0, &rng);
  const Tensor x = Input(rows, in);
  for (auto _ : state) {
    Tensor y = linear.Forward(x);
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["GFLOP/s"] =
      benchmark::Counter(2.0 * rows * in * out * 1e-9,
                         benchmark::Counter::kIsIterationInvariantRate);
  SetCpuPath(before);
  kernels::cpu::SetFloat32MatmulPrecision(MatmulPrecision::kHighest);
}

// Eigen's product of the same shapes: y = x W^T + b, row-major float32.
void RunEigen(benchmark::State& state, int64_t rows, int64_t in, int64_t out) {
  using RowMatrix =
      Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const Tensor x = Input(rows, in);
  const Tensor w = Input(out, in);
  const Tensor b = Input(1, out);
  Eigen::Map<const RowMatrix> x_map(x.Float32(), rows, in);
  Eigen::Map<const RowMatrix> w_map(w.Float32(), out, in);
  Eigen::Map<const Eigen::RowVectorXf> b_map(b.Float32(), out);
  for (auto _ : state) {
    RowMatrix y(rows, out);
    y.noalias() = x_map * w_map.transpose();
    y.rowwise() += b_map;
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["GFLOP/s"] =
      benchmark::Counter(2.0 * rows * in * out * 1e-9,
                         benchmark::Counter::kIsIterationInvariantRate);
}

struct Case {
  CpuPath path;
  MatmulPrecision precision;
};

void RegisterAll() {
  const int64_t shapes[][2] = {{768, 768}, {768, 3072}, {3072, 768}};
  // The AMX cases run where the CPU has AMX (else they report the skip).
  const Case cases[] = {{CpuPath::kAvx512, MatmulPrecision::kHighest},
                        {CpuPath::kAvx2, MatmulPrecision::kHighest},
                        {CpuPath::kAmx, MatmulPrecision::kHigh},
                        {CpuPath::kAmx, MatmulPrecision::kMedium}};
  // A long sequence, and a few to a few hundred tokens (where packing the
  // weights once per call is spread over few rows).
  for (const int64_t rows : {int64_t{32768}, int64_t{16}, int64_t{64},
                             int64_t{128}, int64_t{192}, int64_t{256}}) {
    for (const auto& shape : shapes) {
      const int64_t in = shape[0];
      const int64_t out = shape[1];
      for (const Case& c : cases) {
        benchmark::RegisterBenchmark(
            absl::StrCat("Linear/", kernels::cpu::CpuPathName(c.path), "/",
                         kernels::cpu::MatmulPrecisionName(c.precision),
                         "/rows:", rows, "/in:", in, "/out:", out)
                .c_str(),
            [c, rows, in, out](benchmark::State& state) {
              RunLinear(state, c.path, c.precision, rows, in, out);
            })
            ->Unit(benchmark::kMillisecond)
            ->MeasureProcessCPUTime()
            ->UseRealTime();
      }
      benchmark::RegisterBenchmark(absl::StrCat("Linear/eigen/highest/rows:",
                                                rows, "/in:", in, "/out:", out)
                                       .c_str(),
                                   [rows, in, out](benchmark::State& state) {
                                     RunEigen(state, rows, in, out);
                                   })
          ->Unit(benchmark::kMillisecond)
          ->MeasureProcessCPUTime()
          ->UseRealTime();
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
