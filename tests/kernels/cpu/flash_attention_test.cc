// The fused kernel (FlashForward, FlashBackward) against the float64 oracle
// and against StandardForward/StandardBackward, over strided layouts, uneven
// head splits, groups that select nothing, head dims that are not multiples
// of the SIMD width, segments that are not multiples of the tile sizes, every
// dtype, causal and not; plus thread-count independence, bitwise.

#include "kernels/cpu/flash_attention.h"

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/cpu_path.h"
#include "kernels/cpu/row_io.h"
#include "kernels/cpu/standard_attention.h"
#include "tests/kernels/cpu/host_problem.h"
#include "tests/testing/compare.h"
#include "tests/testing/oracle.h"

namespace dilated {
namespace kernels {
namespace cpu {
namespace {

using testing::HostProblem;
using testing::Layout;
using testing::ProblemShape;

using ::dilated::testing::AllClose;
using ::dilated::testing::Tolerance;

// Against the float64 oracle fed the same (representable) inputs.
Tolerance OutputTolerance(DataType dtype) {
  switch (dtype) {
    case DataType::kFloat32:
      // float32 products over <= 384 keys and a 2.5e-7 exp2; the errors seen
      // stay under a third of this (and above a tenth: it is not loose).
      return {2e-6, 2e-5};
    case DataType::kFloat16:
      // The output is rounded to float16: half an ulp is 2^-11 relative.
      return {1e-3, 1e-3};
    case DataType::kBFloat16:
      // Rounded to bfloat16: half an ulp is 2^-8 relative; the AMX path's
      // bfloat16 P (2^-9 per probability) averages out below that.
      return {8e-3, 8e-3};
    default:  // Index and mask dtypes: never attention tensors.
      break;
  }
  return {0, 0};
}

Tolerance GradientTolerance(DataType dtype) {
  switch (dtype) {
    case DataType::kFloat32:
      // Three chained float32 products (dP, dS, dS K) of values up to ~30;
      // the errors seen stay under a third of this.
      return {2e-5, 2e-4};
    case DataType::kFloat16:
      // Rounding of the result and of the stored out that D = rowsum(dO o O)
      // reads (2^-11 relative each), amplified by |dS K| sums.
      return {6e-3, 6e-3};
    case DataType::kBFloat16:
      // As float16 with bfloat16's 2^-8 (the AMX path rounds P and dS to
      // bfloat16 too, as FlashAttention does).
      return {5e-2, 5e-2};
    default:  // Index and mask dtypes: never attention tensors.
      break;
  }
  return {0, 0};
}

std::vector<double> ToDouble(const std::vector<float>& values) {
  return std::vector<double>(values.begin(), values.end());
}

// Checks that rows the oracle leaves unselected (lse = -inf) are exactly 0.
::testing::AssertionResult UnselectedRowsAreZero(
    const HostProblem& problem, const std::vector<double>& out,
    const std::vector<double>& expected_lse) {
  const ProblemShape& s = problem.shape();
  int64_t unselected = 0;
  for (int64_t b = 0; b < s.batch; ++b) {
    for (int64_t h = 0; h < s.num_heads; ++h) {
      for (int64_t n = 0; n < s.seq_len; ++n) {
        if (!std::isinf(expected_lse[(b * s.num_heads + h) * s.seq_len + n])) {
          continue;
        }
        ++unselected;
        for (int64_t a = 0; a < s.head_dim; ++a) {
          const double x =
              out[((b * s.seq_len + n) * s.num_heads + h) * s.head_dim + a];
          if (x != 0.0) {
            return ::testing::AssertionFailure()
                   << "unselected row b=" << b << " n=" << n << " h=" << h
                   << " holds " << x;
          }
        }
      }
    }
  }
  return ::testing::AssertionSuccess() << unselected << " unselected rows";
}

std::vector<ProblemShape> Shapes() {
  return {
      // One group, 200 positions: three full 64-tiles and a short one.
      {"one_group_200", 1, 200, 2, 16, {200}, {1}},
      // 5 heads over 3 groups (2, 2, 1), offsets 0, 1, 2; b = 2.
      {"uneven_heads", 2, 96, 5, 24, {32, 48, 96}, {1, 2, 3}},
      // Offsets 2 and 3 are >= segment length 2: groups that select nothing.
      {"offset_beyond_segment", 1, 16, 4, 8, {4, 4, 2, 2}, {1, 2, 4, 8}},
      // Head dims that are not multiples of the 8-wide vectors or 6-row
      // register blocks.
      {"dim12", 1, 260, 2, 12, {130, 260}, {1, 2}},
      {"dim20_head_major", 2, 96, 3, 20, {48, 96}, {1, 2}, Layout::kHeadMajor},
      {"dim72_padded", 1, 128, 2, 72, {64, 128}, {2, 1}, Layout::kPadded},
      {"dim100", 1, 96, 2, 100, {96}, {3}},
      // Realistic head dims; 384 positions: two 256-row units of work,
      // tails in every tile.
      {"dim64_long", 1, 768, 2, 64, {384, 768}, {1, 2}},
      {"dim128", 2, 256, 2, 128, {128, 256}, {2, 4}},
      // 1100 positions: three work units of up to 512 rows, the last short.
      {"multi_unit_dim8", 1, 1100, 2, 8, {1100, 550}, {1, 2}},
      {"dim8_many_groups",
       1,
       120,
       6,
       8,
       {24, 40, 60, 120, 120, 8},
       {1, 2, 3, 4, 5, 1}},
  };
}

struct Param {
  ProblemShape shape;
  DataType dtype;
  bool is_causal;
};

std::string ParamName(const ::testing::TestParamInfo<Param>& info) {
  return info.param.shape.label + "_" +
         testing::DataTypeName(info.param.dtype) +
         (info.param.is_causal ? "_causal" : "_full");
}

void PrintTo(const Param& p, std::ostream* os) {
  *os << p.shape.label << "/" << testing::DataTypeName(p.dtype)
      << (p.is_causal ? "/causal" : "/full");
}

std::vector<Param> AllParams() {
  std::vector<Param> params;
  for (const ProblemShape& shape : Shapes()) {
    for (DataType dtype :
         {DataType::kFloat32, DataType::kFloat16, DataType::kBFloat16}) {
      for (bool causal : {false, true})
        params.push_back({shape, dtype, causal});
    }
  }
  return params;
}

class FlashAttentionTest : public ::testing::TestWithParam<Param> {};

// Runs the fused kernels with a workspace of their own on `threads` threads.
void RunFlashForward(const ForwardParams& params, int threads = MaxThreads()) {
  std::vector<float> workspace(threads *
                               FlashForwardWorkspacePerThread(params));
  FlashForward(params, workspace.data(), threads);
}

void RunFlashBackward(const BackwardParams& params,
                      int threads = MaxThreads()) {
  std::vector<float> workspace(threads *
                               FlashBackwardWorkspacePerThread(params.forward));
  FlashBackward(params, workspace.data(), threads);
}

// Runs the standard kernels with a workspace of their own, on every thread.
void RunStandardForward(const ForwardParams& params) {
  const int threads = MaxThreads();
  std::vector<float> workspace(
      threads * StandardWorkspacePerThread(params, false) + 16);
  float* aligned = reinterpret_cast<float*>(
      (reinterpret_cast<uintptr_t>(workspace.data()) + 63) & ~uintptr_t{63});
  StandardForward(params, aligned, threads);
}

void RunStandardBackward(const BackwardParams& params) {
  const int threads = MaxThreads();
  std::vector<float> workspace(
      threads * StandardWorkspacePerThread(params.forward, true) + 16);
  float* aligned = reinterpret_cast<float*>(
      (reinterpret_cast<uintptr_t>(workspace.data()) + 63) & ~uintptr_t{63});
  StandardBackward(params, aligned, threads);
}

TEST_P(FlashAttentionTest, ForwardMatchesOracleAndStandard) {
  const Param& param = GetParam();
  HostProblem problem(param.shape, param.dtype, param.is_causal, 7);
  RunFlashForward(problem.Forward());
  const std::vector<double> out = problem.out.Download();
  const std::vector<double> lse = ToDouble(problem.lse);
  EXPECT_TRUE(problem.out.GapsIntact()) << "wrote outside the elements";

  std::vector<double> expected_out, expected_lse;
  dilated::testing::OracleForward(problem.Oracle(), problem.q_values,
                                  problem.k_values, problem.v_values,
                                  &expected_out, &expected_lse);
  EXPECT_TRUE(AllClose(out, expected_out, OutputTolerance(param.dtype)))
      << "out vs oracle";
  // float32 whatever the storage; scores up to ~16 in magnitude.
  EXPECT_TRUE(AllClose(lse, expected_lse, {2e-5, 2e-6})) << "lse vs oracle";
  EXPECT_TRUE(UnselectedRowsAreZero(problem, out, expected_lse));

  problem.PoisonOutputs();
  RunStandardForward(problem.Forward());
  // Same float32 arithmetic in another order; 16-bit outputs may round to
  // neighbouring values, so the storage tolerance applies there.
  const Tolerance peer = param.dtype == DataType::kFloat32
                             ? Tolerance{1e-6, 1e-5}
                             : OutputTolerance(param.dtype);
  EXPECT_TRUE(AllClose(out, problem.out.Download(), peer)) << "out vs standard";
  EXPECT_TRUE(AllClose(lse, ToDouble(problem.lse), {1e-5, 1e-6}))
      << "lse vs standard";
}

TEST_P(FlashAttentionTest, BackwardMatchesOracleAndStandard) {
  const Param& param = GetParam();
  HostProblem problem(param.shape, param.dtype, param.is_causal, 11);
  RunFlashForward(problem.Forward());
  RunFlashBackward(problem.Backward());
  const std::vector<double> grads[3] = {problem.grad_q.Download(),
                                        problem.grad_k.Download(),
                                        problem.grad_v.Download()};
  for (const testing::HostTensor* t :
       {&problem.grad_q, &problem.grad_k, &problem.grad_v}) {
    EXPECT_TRUE(t->GapsIntact()) << "wrote outside the elements";
  }

  std::vector<double> expected[3];
  dilated::testing::OracleBackward(
      problem.Oracle(), problem.q_values, problem.k_values, problem.v_values,
      problem.grad_out_values, &expected[0], &expected[1], &expected[2]);
  const char* names[3] = {"grad_q", "grad_k", "grad_v"};
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(AllClose(grads[i], expected[i], GradientTolerance(param.dtype)))
        << names[i] << " vs oracle";
  }

  // The standard backward writes the same gradients from scratch.
  testing::HostTensor* targets[3] = {&problem.grad_q, &problem.grad_k,
                                     &problem.grad_v};
  for (testing::HostTensor* t : targets) t->FillWithSentinel();
  RunStandardBackward(problem.Backward());
  const Tolerance peer = param.dtype == DataType::kFloat32
                             ? Tolerance{1e-5, 1e-4}
                             : GradientTolerance(param.dtype);
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(AllClose(grads[i], targets[i]->Download(), peer))
        << names[i] << " vs standard";
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, FlashAttentionTest,
                         ::testing::ValuesIn(AllParams()), ParamName);

// The forward pass needs tiles only: under 1 MiB per thread for head dims up
// to 512, whatever the sequence length.
TEST(FlashWorkspace, ForwardStaysUnderOneMiBPerThread) {
  for (int64_t head_dim : {8, 40, 64, 128, 256, 512}) {
    ForwardParams params{};
    params.head_dim = head_dim;
    params.seq_len = 1 << 20;
    EXPECT_LE(FlashForwardWorkspacePerThread(params) * sizeof(float),
              size_t{1} << 20)
        << "head_dim " << head_dim;
  }
}

// 16-bit tensors size the workspace for the AMX forward too: its unit holds
// up to 1 MiB of query-block tiles plus a key tile, whatever the sequence
// length.
TEST(FlashWorkspace, SixteenBitForwardStaysUnderTwoMiBPerThread) {
  for (DataType dtype : {DataType::kBFloat16, DataType::kFloat16}) {
    for (int64_t head_dim : {8, 40, 64, 128, 256, 512}) {
      ForwardParams params{};
      params.dtype = dtype;
      params.head_dim = head_dim;
      params.seq_len = 1 << 20;
      EXPECT_LE(FlashForwardWorkspacePerThread(params) * sizeof(float),
                size_t{2} << 20)
          << testing::DataTypeName(dtype) << " head_dim " << head_dim;
    }
  }
}

// Every output byte must be the same whatever the number of threads.
class ThreadCountTest
    : public ::testing::TestWithParam<std::tuple<DataType, bool>> {};

TEST_P(ThreadCountTest, ResultsAreBitwiseIdentical) {
  const DataType dtype = std::get<0>(GetParam());
  const bool causal = std::get<1>(GetParam());
  const ProblemShape shape{"threads",        2,        1024, 5, 40,
                           {256, 512, 1024}, {1, 2, 4}};
  std::vector<std::vector<unsigned char>> reference;
  std::vector<float> reference_lse;
  for (int threads : {1, 2, 3}) {
    HostProblem problem(shape, dtype, causal, 3);
    RunFlashForward(problem.Forward(), threads);
    RunFlashBackward(problem.Backward(), threads);
    const std::vector<std::vector<unsigned char>> result = {
        problem.out.bytes(), problem.grad_q.bytes(), problem.grad_k.bytes(),
        problem.grad_v.bytes()};
    if (threads == 1) {
      reference = result;
      reference_lse = problem.lse;
      continue;
    }
    EXPECT_TRUE(result[0] == reference[0]) << threads << " threads: out";
    EXPECT_TRUE(result[1] == reference[1]) << threads << " threads: grad_q";
    EXPECT_TRUE(result[2] == reference[2]) << threads << " threads: grad_k";
    EXPECT_TRUE(result[3] == reference[3]) << threads << " threads: grad_v";
    EXPECT_EQ(0, std::memcmp(problem.lse.data(), reference_lse.data(),
                             reference_lse.size() * sizeof(float)))
        << threads << " threads: lse";
  }
}

// The path comes from the CPU unless DILATED_CPU_PATH forces a narrower one
// (the _avx2 and _avx512 test targets set it, so that the suites above run on
// every path).
TEST(CpuPathTest, EnvironmentAndCpuChooseThePath) {
  const char* env = std::getenv("DILATED_CPU_PATH");
  const std::string forced = env == nullptr ? "" : env;
  CpuPath expected = CpuHasAmx()      ? CpuPath::kAmx
                     : CpuHasAvx512() ? CpuPath::kAvx512
                                      : CpuPath::kAvx2;
  if (forced == "avx2") expected = CpuPath::kAvx2;
  if (forced == "avx512" && expected == CpuPath::kAmx) {
    expected = CpuPath::kAvx512;
  }
  EXPECT_EQ(CpuPathName(expected), std::string(CpuPathName(ActiveCpuPath())));
  ::testing::Test::RecordProperty("cpu_path", CpuPathName(ActiveCpuPath()));
}

// Restores the active path when it goes out of scope.
class ScopedCpuPath {
 public:
  ScopedCpuPath() : saved_(ActiveCpuPath()) {}
  ~ScopedCpuPath() { SetCpuPath(saved_); }

 private:
  CpuPath saved_;
};

// Both paths on one problem: the same attention up to float32 rounding.
TEST(CpuPathTest, Avx2AndAvx512Agree) {
  if (!CpuHasAvx512()) GTEST_SKIP() << "no AVX-512 on this CPU";
  ScopedCpuPath restore;
  const ProblemShape shape{"paths", 1, 1536, 3, 64, {512, 1536}, {1, 3}};
  for (bool causal : {false, true}) {
    std::vector<double> out[2];
    std::vector<double> lse[2];
    const CpuPath paths[2] = {CpuPath::kAvx2, CpuPath::kAvx512};
    for (int i = 0; i < 2; ++i) {
      ASSERT_TRUE(SetCpuPath(paths[i]));
      HostProblem problem(shape, DataType::kFloat32, causal, 5);
      RunFlashForward(problem.Forward());
      out[i] = problem.out.Download();
      lse[i] = ToDouble(problem.lse);
    }
    // Two float32 evaluations in different orders (8- vs 16-lane sums, a
    // different exp2 rounding): the tolerance of the float32 peer check.
    EXPECT_TRUE(AllClose(out[1], out[0], {1e-6, 1e-5}))
        << (causal ? "causal" : "full") << " out";
    EXPECT_TRUE(AllClose(lse[1], lse[0], {1e-5, 1e-6}))
        << (causal ? "causal" : "full") << " lse";
  }
}

// Forcing a path the CPU lacks is refused.
TEST(CpuPathTest, PathsAreRefusedWithoutTheCpu) {
  ScopedCpuPath restore;
  EXPECT_EQ(CpuHasAvx512(), SetCpuPath(CpuPath::kAvx512));
  EXPECT_EQ(CpuHasAmx(), SetCpuPath(CpuPath::kAmx));
  EXPECT_TRUE(SetCpuPath(CpuPath::kAvx2));
  EXPECT_EQ(CpuPath::kAvx2, ActiveCpuPath());
}

// AMX needs AVX-512 for its softmax: a CPU reported with AMX has both.
TEST(CpuPathTest, AmxImpliesAvx512) {
  if (CpuHasAmx()) {
    EXPECT_TRUE(CpuHasAvx512());
  }
}

// The AMX kernels against the AVX-512 ones on 16-bit tensors: the same
// attention; bfloat16 differs by the rounding of P to bfloat16 (2^-9
// relative per probability) on top of the output's own rounding, float16 by
// the output's rounding only (its products are split into exact bfloat16
// pairs, flash_amx.h).
class AmxPathTest
    : public ::testing::TestWithParam<std::tuple<DataType, bool>> {};

TEST_P(AmxPathTest, AmxAndAvx512Agree) {
  if (!CpuHasAmx()) GTEST_SKIP() << "no AMX on this CPU";
  const DataType dtype = std::get<0>(GetParam());
  const bool causal = std::get<1>(GetParam());
  ScopedCpuPath restore;
  const ProblemShape shape{"amx", 1, 1536, 3, 64, {512, 1536}, {1, 3}};
  std::vector<double> out[2];
  std::vector<double> lse[2];
  const CpuPath paths[2] = {CpuPath::kAvx512, CpuPath::kAmx};
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(SetCpuPath(paths[i]));
    HostProblem problem(shape, dtype, causal, 5);
    RunFlashForward(problem.Forward());
    out[i] = problem.out.Download();
    lse[i] = ToDouble(problem.lse);
  }
  EXPECT_TRUE(AllClose(out[1], out[0], OutputTolerance(dtype))) << "out";
  // Scores are exact float32 sums of exact products on both paths, the sums
  // of probabilities float32 too: float32 rounding apart.
  EXPECT_TRUE(AllClose(lse[1], lse[0], {1e-5, 1e-6})) << "lse";
  // Not the same code: bfloat16 probabilities leave a trace in the bits.
  if (dtype == DataType::kBFloat16) {
    EXPECT_NE(out[1], out[0]);
  }
}

INSTANTIATE_TEST_SUITE_P(
    SixteenBit, AmxPathTest,
    ::testing::Combine(::testing::Values(DataType::kFloat16,
                                         DataType::kBFloat16),
                       ::testing::Bool()),
    [](const ::testing::TestParamInfo<std::tuple<DataType, bool>>& info) {
      return testing::DataTypeName(std::get<0>(info.param)) +
             (std::get<1>(info.param) ? "_causal" : "_full");
    });

INSTANTIATE_TEST_SUITE_P(
    AllDtypes, ThreadCountTest,
    ::testing::Combine(::testing::Values(DataType::kFloat32, DataType::kFloat16,
                                         DataType::kBFloat16),
                       ::testing::Bool()));

}  // namespace
}  // namespace cpu
}  // namespace kernels
}  // namespace dilated
