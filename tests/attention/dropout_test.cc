// Attention dropout through the public API: "standard", "improved" and
// "auto" against a float64 oracle that applies the mask function of
// kernels/dropout_rng.h explicitly, on every CPU path of this machine
// (AVX2, AVX-512, AMX) and, in the CUDA variant of this suite, on CUDA
// tensors; gradients against central differences of that oracle with the
// mask fixed by the seed; the keep rate; determinism; p = 0; and the
// refusal of the implementations that do not apply dropout. Matching one
// oracle on every path and device is what shows the mask is the same
// everywhere.

#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "attention/registry.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/cpu/cpu_path.h"
#include "tests/testing/attention_run.h"
#include "tests/testing/compare.h"
#include "tests/testing/dropout_oracle.h"
#include "tests/testing/test_device.h"
#include "tests/testing/test_tensor.h"

namespace dilated {
namespace {

using kernels::cpu::CpuPath;
using testing::AllClose;
using testing::AttentionInputs;
using testing::AttentionResults;
using testing::DropoutOracleProblem;
using testing::TestDevice;

constexpr double kDropout = 0.3;
constexpr uint64_t kSeed = 0x5eed5eed12345678ULL;
constexpr uint64_t kOffset = 1000;

struct Case {
  std::string label;
  int64_t batch;
  int64_t seq_len;
  int64_t num_heads;
  int64_t head_dim;
  std::vector<int64_t> segment_lengths;
  std::vector<int64_t> dilation_rates;
};

std::vector<Case> Cases() {
  return {
      {"two_groups", 2, 32, 4, 16, {8, 16}, {1, 2}},
      {"partial_segments", 1, 45, 3, 8, {8, 16, 32}, {1, 2, 4}},
      // Problems of 256 and 128 rows: several query blocks and key tiles on
      // every path, so the mask must follow positions across tiles.
      {"dim64_tiles", 1, 256, 2, 64, {128, 256}, {1, 2}},
  };
}

AttentionConfig ConfigOf(const Case& c, double dropout) {
  AttentionConfig config;
  config.segment_lengths = c.segment_lengths;
  config.dilation_rates = c.dilation_rates;
  config.dropout = dropout;
  return config;
}

AttentionInputs Inputs(const Case& c, DType dtype, bool causal) {
  const int64_t count = c.batch * c.seq_len * c.num_heads * c.head_dim;
  AttentionInputs in;
  in.shape = {c.batch, c.seq_len, c.num_heads, c.head_dim};
  in.q = testing::Values(count, 1.0, dtype, 31);
  in.k = testing::Values(count, 1.0, dtype, 32);
  in.v = testing::Values(count, 1.0, dtype, 33);
  in.grad_out = testing::Values(count, 1.0, dtype, 34);
  in.is_causal = causal;
  in.training = true;
  in.dropout_seed = kSeed;
  in.dropout_offset = kOffset;
  return in;
}

DropoutOracleProblem OracleOf(const Case& c, bool causal) {
  DropoutOracleProblem problem;
  problem.batch = c.batch;
  problem.seq_len = c.seq_len;
  problem.num_heads = c.num_heads;
  problem.head_dim = c.head_dim;
  problem.segment_lengths = c.segment_lengths;
  problem.dilation_rates = c.dilation_rates;
  problem.is_causal = causal;
  problem.softmax_scale = 1.0 / std::sqrt(static_cast<double>(c.head_dim));
  problem.dropout = kDropout;
  problem.seed = kSeed;
  problem.offset = kOffset;
  return problem;
}

AttentionResults RunOn(TestDevice* device, const std::string& name,
                       const Case& c, double dropout, DType dtype,
                       const AttentionInputs& in) {
  std::unique_ptr<Attention> attention =
      *CreateAttention(name, ConfigOf(c, dropout));
  return testing::RunAttention(*attention, device, dtype,
                               testing::Layout::kContiguous, in);
}

// On the CPU.
AttentionResults RunCall(const std::string& name, const Case& c, double dropout,
                         DType dtype, const AttentionInputs& in) {
  return RunOn(testing::TestDevices()[0], name, c, dropout, dtype, in);
}

bool IsCpu(const TestDevice* device) {
  return device->device().type == DeviceType::kCpu;
}

// "improved" on CUDA has no float32 kernels (it refuses them).
bool Runs(const TestDevice* device, const std::string& name, DType dtype) {
  return IsCpu(device) || name != "improved" || dtype != DType::kFloat32;
}

// The CPU paths this machine runs; restores the widest on destruction.
class CpuPaths {
 public:
  CpuPaths() : initial_(kernels::cpu::ActiveCpuPath()) {}
  ~CpuPaths() { kernels::cpu::SetCpuPath(initial_); }
  // Returns the paths to run on `device`: every available one on the CPU,
  // the current one (which CUDA kernels ignore) elsewhere.
  std::vector<CpuPath> For(const TestDevice* device) const {
    return IsCpu(device) ? Available() : std::vector<CpuPath>{initial_};
  }
  std::vector<CpuPath> Available() const {
    std::vector<CpuPath> paths;
    for (CpuPath path : {CpuPath::kAvx2, CpuPath::kAvx512, CpuPath::kAmx}) {
      if (kernels::cpu::SetCpuPath(path)) paths.push_back(path);
    }
    kernels::cpu::SetCpuPath(initial_);
    return paths;
  }

 private:
  CpuPath initial_;
};

const char* DTypeLabel(DType dtype) {
  return dtype == DType::kFloat32   ? "float32"
         : dtype == DType::kFloat16 ? "float16"
                                    : "bfloat16";
}

// A wrong or misplaced mask changes an output by about one probability
// times |v| / (1 - p), ~1e-2 or more at these lengths, far above the
// storage tolerances.
TEST(DropoutTest, OutputMatchesOracleOnEveryPathAndImplementation) {
  CpuPaths paths;
  for (TestDevice* device : testing::TestDevices()) {
    for (CpuPath path : paths.For(device)) {
      ASSERT_TRUE(kernels::cpu::SetCpuPath(path));
      for (const Case& c : Cases()) {
        for (bool causal : {false, true}) {
          for (DType dtype :
               {DType::kFloat32, DType::kBFloat16, DType::kFloat16}) {
            const AttentionInputs in = Inputs(c, dtype, causal);
            std::vector<double> out, lse;
            testing::DropoutOracleForward(OracleOf(c, causal), in.q, in.k, in.v,
                                          &out, &lse);
            for (const char* name : {"standard", "improved", "auto"}) {
              if (!Runs(device, name, dtype)) continue;
              const std::string where = absl::StrCat(
                  name, " ", c.label, " causal=", causal, " ",
                  DTypeLabel(dtype), " ", DeviceName(device->device()),
                  " path=", kernels::cpu::CpuPathName(path));
              const AttentionResults r =
                  RunOn(device, name, c, kDropout, dtype, in);
              ASSERT_TRUE(r.forward.ok()) << where << ": " << r.forward;
              ASSERT_TRUE(r.backward.ok()) << where << ": " << r.backward;
              EXPECT_TRUE(AllClose(r.out, out, testing::OutputTolerance(dtype)))
                  << where;
              // lse is float32 on every dtype and that of the undropped
              // softmax.
              EXPECT_TRUE(AllClose(r.lse, lse,
                                   testing::OutputTolerance(DType::kFloat32)))
                  << where;
            }
          }
        }
      }
    }
  }
}

// Loss sum(out * grad_out) of the oracle, whose mask is fixed by the seed,
// so it is smooth in q, k and v.
double OracleLoss(const DropoutOracleProblem& problem,
                  const std::vector<double>& q, const std::vector<double>& k,
                  const std::vector<double>& v,
                  const std::vector<double>& grad_out) {
  std::vector<double> out, lse;
  testing::DropoutOracleForward(problem, q, k, v, &out, &lse);
  double loss = 0.0;
  for (size_t e = 0; e < out.size(); ++e) loss += out[e] * grad_out[e];
  return loss;
}

// Every dtype: float32 runs the AVX2 and AVX-512 backward, bfloat16 and
// float16 the AMX one where the machine has it; the oracle sees the same
// rounded inputs.
TEST(DropoutTest, GradientsMatchCentralDifferencesOfTheOracle) {
  const Case c{"small", 1, 24, 2, 8, {8, 24}, {1, 2}};
  CpuPaths paths;
  for (DType dtype : {DType::kFloat32, DType::kBFloat16, DType::kFloat16}) {
    for (bool causal : {false, true}) {
      const AttentionInputs in = Inputs(c, dtype, causal);
      const DropoutOracleProblem problem = OracleOf(c, causal);
      // Step 1e-5 in float64: truncation ~1e-10, cancellation ~1e-11.
      constexpr double kStep = 1e-5;
      std::vector<double> numeric[3];
      for (int t = 0; t < 3; ++t) {
        for (size_t e = 0; e < in.q.size(); ++e) {
          std::vector<double> x[3] = {in.q, in.k, in.v};
          x[t][e] += kStep;
          const double up = OracleLoss(problem, x[0], x[1], x[2], in.grad_out);
          x[t][e] -= 2 * kStep;
          const double down =
              OracleLoss(problem, x[0], x[1], x[2], in.grad_out);
          numeric[t].push_back((up - down) / (2 * kStep));
        }
      }
      for (TestDevice* device : testing::TestDevices()) {
        for (CpuPath path : paths.For(device)) {
          ASSERT_TRUE(kernels::cpu::SetCpuPath(path));
          for (const char* name : {"standard", "improved"}) {
            if (!Runs(device, name, dtype)) continue;
            const std::string where =
                absl::StrCat(name, " causal=", causal, " ", DTypeLabel(dtype),
                             " ", DeviceName(device->device()),
                             " path=", kernels::cpu::CpuPathName(path));
            const AttentionResults r =
                RunOn(device, name, c, kDropout, dtype, in);
            ASSERT_TRUE(r.backward.ok()) << where << ": " << r.backward;
            const testing::Tolerance tolerance =
                testing::GradientTolerance(dtype);
            EXPECT_TRUE(AllClose(r.grad_q, numeric[0], tolerance)) << where;
            EXPECT_TRUE(AllClose(r.grad_k, numeric[1], tolerance)) << where;
            EXPECT_TRUE(AllClose(r.grad_v, numeric[2], tolerance)) << where;
          }
        }
      }
    }
  }
}

// With q = k = 0 every probability of a row of L keys is 1 / L, and v = 1
// makes out = kept / (L (1 - p)): the outputs count the kept probabilities.
// Over n = 2 * 4 * 256 * 256 = 524288 of them the count is Binomial(n,
// 1 - p), standard deviation sqrt(n p (1 - p)) ~ 332; 6 of them bound a
// fluke at about 1e-9.
TEST(DropoutTest, KeepRateIsOneMinusP) {
  const Case c{"uniform", 2, 256, 4, 8, {256}, {1}};
  const int64_t count = c.batch * c.seq_len * c.num_heads * c.head_dim;
  AttentionInputs in = Inputs(c, DType::kFloat32, false);
  in.q.assign(count, 0.0);
  in.k.assign(count, 0.0);
  in.v.assign(count, 1.0);
  for (const char* name : {"standard", "improved"}) {
    const AttentionResults r = RunCall(name, c, kDropout, DType::kFloat32, in);
    ASSERT_TRUE(r.forward.ok()) << r.forward;
    double kept = 0.0;
    for (int64_t e = 0; e < count; e += c.head_dim) {
      kept += std::round(r.out[e] * c.seq_len * (1.0 - kDropout));
    }
    const double n =
        static_cast<double>(c.batch * c.num_heads) * c.seq_len * c.seq_len;
    EXPECT_NEAR(kept, n * (1.0 - kDropout),
                6.0 * std::sqrt(n * kDropout * (1.0 - kDropout)))
        << name;
  }
}

int64_t CountDifferent(const std::vector<double>& a,
                       const std::vector<double>& b) {
  int64_t different = 0;
  for (size_t e = 0; e < a.size(); ++e) different += a[e] != b[e];
  return different;
}

TEST(DropoutTest, SameSeedSameBitsOtherSeedOrOffsetOtherMask) {
  const Case c = Cases()[2];
  const AttentionInputs in = Inputs(c, DType::kFloat32, false);
  const AttentionResults first =
      RunCall("improved", c, kDropout, DType::kFloat32, in);
  const AttentionResults again =
      RunCall("improved", c, kDropout, DType::kFloat32, in);
  ASSERT_TRUE(first.backward.ok()) << first.backward;
  EXPECT_EQ(CountDifferent(first.out, again.out), 0);
  EXPECT_EQ(CountDifferent(first.grad_q, again.grad_q), 0);
  EXPECT_EQ(CountDifferent(first.grad_k, again.grad_k), 0);
  EXPECT_EQ(CountDifferent(first.grad_v, again.grad_v), 0);

  // Another mask changes nearly every output row (each sums over 128 or
  // more dropped-or-kept probabilities); more than half is a loose bound.
  AttentionInputs other_seed = in;
  other_seed.dropout_seed = kSeed + 1;
  AttentionInputs other_offset = in;
  other_offset.dropout_offset = kOffset + c.batch * c.num_heads;
  for (const AttentionInputs& other : {other_seed, other_offset}) {
    const AttentionResults r =
        RunCall("improved", c, kDropout, DType::kFloat32, other);
    ASSERT_TRUE(r.forward.ok()) << r.forward;
    EXPECT_GT(CountDifferent(first.out, r.out),
              static_cast<int64_t>(first.out.size() / 2));
  }
}

// Dropout 0 while training, and dropout > 0 without training, are the
// undropped attention, bit for bit.
TEST(DropoutTest, NoDropoutIsBitwiseTheUndroppedAttention) {
  const Case c = Cases()[1];
  for (const char* name : {"standard", "improved"}) {
    AttentionInputs inference = Inputs(c, DType::kFloat32, true);
    inference.training = false;
    const AttentionResults base =
        RunCall(name, c, 0.0, DType::kFloat32, inference);
    const AttentionResults training_p0 = RunCall(
        name, c, 0.0, DType::kFloat32, Inputs(c, DType::kFloat32, true));
    const AttentionResults inference_p =
        RunCall(name, c, kDropout, DType::kFloat32, inference);
    for (const AttentionResults* r : {&training_p0, &inference_p}) {
      ASSERT_TRUE(r->backward.ok()) << r->backward;
      EXPECT_EQ(CountDifferent(base.out, r->out), 0) << name;
      EXPECT_EQ(CountDifferent(base.lse, r->lse), 0) << name;
      EXPECT_EQ(CountDifferent(base.grad_q, r->grad_q), 0) << name;
      EXPECT_EQ(CountDifferent(base.grad_v, r->grad_v), 0) << name;
    }
  }
}

TEST(DropoutTest, ImplementationsWithoutDropoutRefuseNamingThemselves) {
  const Case c{"refused", 1, 32, 4, 8, {16, 32}, {1, 2}};
  for (const char* name : {"longnet", "block_sparse", "ring", "distributed"}) {
    AttentionConfig config = ConfigOf(c, 0.1);
    config.block_sparse.block_size = 16;
    absl::StatusOr<std::unique_ptr<Attention>> attention =
        CreateAttention(name, config);
    ASSERT_TRUE(attention.ok()) << name << ": " << attention.status();
    const AttentionResults r = testing::RunAttention(
        **attention, testing::TestDevices()[0], DType::kFloat32,
        testing::Layout::kContiguous, Inputs(c, DType::kFloat32, false));
    EXPECT_EQ(r.forward.code(), absl::StatusCode::kUnimplemented)
        << name << ": " << r.forward;
    EXPECT_THAT(std::string(r.forward.message()),
                ::testing::HasSubstr(absl::StrCat("dropout 0.1 with "
                                                  "training=true is not "
                                                  "implemented by '",
                                                  name, "'")));
  }
}

TEST(DropoutTest, ProbabilityOutsideRangeIsInvalidArgument) {
  const Case c = Cases()[0];
  for (double p : {1.0, -0.25, std::numeric_limits<double>::quiet_NaN()}) {
    const absl::StatusOr<std::unique_ptr<Attention>> attention =
        CreateAttention("improved", ConfigOf(c, p));
    EXPECT_EQ(attention.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(attention.status().message()),
                ::testing::HasSubstr("dropout must be in [0, 1), got"));
  }
}

}  // namespace
}  // namespace dilated
