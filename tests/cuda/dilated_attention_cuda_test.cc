// CUDA "improved" (fused kernels) and "standard" (unfused path) against the
// naive float64 oracle: forward out and lse, and the three gradients, over
// configurations that exercise the strided views (uneven head split, several
// groups with one rate, offset >= segment length, b > 1, causal or not,
// head_dim 32/64/128/256 and odd multiples of 8, float16/bfloat16/float32,
// q/k/v packed in one buffer). Outputs are poisoned with NaN before each
// call, so an element the kernels fail to write fails the comparison.

#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "attention/attention.h"
#include "attention/config.h"
#include "attention/kernel_attention.h"
#include "attention/tensor.h"
#include "gtest/gtest.h"
#include "kernels/numeric.h"
#include "tests/testing/oracle.h"

namespace dilated {
namespace {

using testing::OracleBackward;
using testing::OracleForward;
using testing::OracleProblem;

struct Case {
  std::string name;
  int64_t batch;
  int64_t seq;
  int64_t heads;
  int64_t head_dim;
  std::vector<int64_t> segments;
  std::vector<int64_t> rates;
  DType dtype;
  bool causal;
  bool packed_qkv = false;  // q, k, v as views of one [b, n, 3, h, d] buffer
  // When > 0, key row p is scaled by 1 + key_growth * p / n, so that the
  // largest score of a query grows from key tile to key tile by more than
  // the kernels' running-maximum slack (the rescaling path is taken late
  // in the sequence, not only on the first tiles).
  double key_growth = 0.0;
};

// Relative L2 error bounds. float16 stores 11 significant bits (rounding
// 2^-12 relative), bfloat16 8 (2^-9); the kernels round P (and dS) to the
// input type before the second product and round the results, so errors of
// a few roundings are expected. float32 runs in float32 throughout.
double ForwardTolerance(DType dtype) {
  switch (dtype) {
    case DType::kFloat16:
      return 4e-3;
    case DType::kBFloat16:
      return 3e-2;
    case DType::kFloat32:
      break;
  }
  return 1e-5;
}

// Gradients add the rounding of dS = P o (dP - D), where the difference
// cancels, so their bounds are wider.
double GradientTolerance(DType dtype) {
  switch (dtype) {
    case DType::kFloat16:
      return 1e-2;
    case DType::kBFloat16:
      return 6e-2;
    case DType::kFloat32:
      break;
  }
  return 1e-4;
}

void CheckCuda(cudaError_t error, const char* what) {
  ASSERT_EQ(error, cudaSuccess) << what << ": " << cudaGetErrorString(error);
}

// Device memory freed on destruction.
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t bytes) : bytes_(bytes) {
    CheckCuda(cudaMalloc(&data_, bytes), "cudaMalloc");
  }
  ~DeviceBuffer() { cudaFree(data_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  // Fills every byte with 0xff: NaN in float16, bfloat16 and float32.
  void Poison() const { CheckCuda(cudaMemset(data_, 0xff, bytes_), "memset"); }

 private:
  void* data_ = nullptr;
  size_t bytes_;
};

// Returns `x` rounded to `dtype` (the value the device sees).
double RoundTo(double x, DType dtype) {
  const float f = static_cast<float>(x);
  switch (dtype) {
    case DType::kFloat16:
      return kernels::HalfToFloat(kernels::FloatToHalf(f));
    case DType::kBFloat16:
      return kernels::BFloat16ToFloat(kernels::FloatToBFloat16(f));
    case DType::kFloat32:
      break;
  }
  return f;
}

// Writes `x` as `dtype` at `dst`.
void StoreAs(double x, DType dtype, void* dst) {
  const float f = static_cast<float>(x);
  if (dtype == DType::kFloat32) {
    std::memcpy(dst, &f, 4);
  } else {
    const uint16_t h = dtype == DType::kFloat16 ? kernels::FloatToHalf(f)
                                                : kernels::FloatToBFloat16(f);
    std::memcpy(dst, &h, 2);
  }
}

double LoadAs(const void* src, DType dtype) {
  if (dtype == DType::kFloat32) {
    float f;
    std::memcpy(&f, src, 4);
    return f;
  }
  uint16_t h;
  std::memcpy(&h, src, 2);
  return dtype == DType::kFloat16 ? kernels::HalfToFloat(h)
                                  : kernels::BFloat16ToFloat(h);
}

// Returns ||a - b|| / ||b||; NaN anywhere in `a` gives infinity.
double RelativeError(const std::vector<double>& a,
                     const std::vector<double>& b) {
  double diff = 0.0;
  double norm = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(a[i])) return std::numeric_limits<double>::infinity();
    diff += (a[i] - b[i]) * (a[i] - b[i]);
    norm += b[i] * b[i];
  }
  return std::sqrt(diff / std::max(norm, 1e-300));
}

std::vector<double> RandomRounded(size_t count, DType dtype,
                                  std::mt19937_64* rng) {
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<double> values(count);
  for (double& x : values) x = RoundTo(normal(*rng), dtype);
  return values;
}

class DilatedAttentionCudaTest
    : public ::testing::TestWithParam<std::tuple<Case, std::string>> {};

TEST_P(DilatedAttentionCudaTest, MatchesNaiveOracle) {
  const Case& c = std::get<0>(GetParam());
  const std::string& implementation = std::get<1>(GetParam());
  const int64_t b = c.batch, n = c.seq, h = c.heads, d = c.head_dim;
  const int64_t elements = b * n * h * d;
  const int64_t es = DTypeSize(c.dtype);
  const Device device = Device::Cuda(0);

  std::mt19937_64 rng(std::hash<std::string>()(c.name) + 17);
  const std::vector<double> q = RandomRounded(elements, c.dtype, &rng);
  std::vector<double> k = RandomRounded(elements, c.dtype, &rng);
  if (c.key_growth > 0.0) {
    for (int64_t i = 0; i < elements; ++i) {
      const int64_t position = (i / (h * d)) % n;
      k[i] = RoundTo(k[i] * (1.0 + c.key_growth * position / n), c.dtype);
    }
  }
  const std::vector<double> v = RandomRounded(elements, c.dtype, &rng);
  const std::vector<double> grad_out = RandomRounded(elements, c.dtype, &rng);

  // Inputs: separate contiguous tensors, or views into one packed buffer.
  DeviceBuffer qkv(3 * elements * es);
  std::vector<char> host(3 * elements * es);
  std::vector<TensorView> inputs(3);
  for (int t = 0; t < 3; ++t) {
    const std::vector<double>& src = t == 0 ? q : (t == 1 ? k : v);
    TensorView& view = inputs[t];
    if (c.packed_qkv) {
      view = TensorView::Contiguous(
          static_cast<char*>(qkv.data()) + t * h * d * es, c.dtype,
          {b, n, h, d}, device);
      view.strides = {n * 3 * h * d, 3 * h * d, d, 1};
    } else {
      view = TensorView::Contiguous(
          static_cast<char*>(qkv.data()) + t * elements * es, c.dtype,
          {b, n, h, d}, device);
    }
    for (int64_t i0 = 0; i0 < b; ++i0) {
      for (int64_t i1 = 0; i1 < n; ++i1) {
        for (int64_t i2 = 0; i2 < h; ++i2) {
          for (int64_t i3 = 0; i3 < d; ++i3) {
            const int64_t offset = (static_cast<char*>(view.data) -
                                    static_cast<char*>(qkv.data())) /
                                       es +
                                   i0 * view.strides[0] + i1 * view.strides[1] +
                                   i2 * view.strides[2] + i3;
            StoreAs(src[((i0 * n + i1) * h + i2) * d + i3], c.dtype,
                    host.data() + offset * es);
          }
        }
      }
    }
  }
  CheckCuda(
      cudaMemcpy(qkv.data(), host.data(), host.size(), cudaMemcpyHostToDevice),
      "upload qkv");
  std::vector<char> grad_host(elements * es);
  for (int64_t i = 0; i < elements; ++i) {
    StoreAs(grad_out[i], c.dtype, grad_host.data() + i * es);
  }
  DeviceBuffer grad_out_buffer(elements * es);
  CheckCuda(cudaMemcpy(grad_out_buffer.data(), grad_host.data(),
                       grad_host.size(), cudaMemcpyHostToDevice),
            "upload grad_out");

  DeviceBuffer out(elements * es), lse(b * h * n * sizeof(float));
  DeviceBuffer grad_q(elements * es), grad_k(elements * es),
      grad_v(elements * es);
  for (const DeviceBuffer* buffer : {&out, &lse, &grad_q, &grad_k, &grad_v}) {
    buffer->Poison();
  }
  auto view_of = [&](const DeviceBuffer& buffer) {
    return TensorView::Contiguous(buffer.data(), c.dtype, {b, n, h, d}, device);
  };
  const TensorView lse_view =
      TensorView::Contiguous(lse.data(), DType::kFloat32, {b, h, n}, device);

  AttentionConfig config;
  config.segment_lengths = c.segments;
  config.dilation_rates = c.rates;
  ASSERT_TRUE(config.Validate().ok());
  KernelAttention attention(implementation, config, implementation);
  cudaStream_t stream;
  CheckCuda(cudaStreamCreate(&stream), "cudaStreamCreate");
  ForwardOptions options;
  options.is_causal = c.causal;
  options.stream = stream;

  absl::Status status = attention.Forward(inputs[0], inputs[1], inputs[2],
                                          view_of(out), options, &lse_view);
  ASSERT_TRUE(status.ok()) << status;
  status =
      attention.Backward(inputs[0], inputs[1], inputs[2], view_of(out),
                         lse_view, view_of(grad_out_buffer), view_of(grad_q),
                         view_of(grad_k), view_of(grad_v), options);
  ASSERT_TRUE(status.ok()) << status;
  CheckCuda(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
  CheckCuda(cudaGetLastError(), "kernels");

  auto download = [&](const DeviceBuffer& buffer) {
    std::vector<char> raw(buffer.bytes());
    CheckCuda(cudaMemcpy(raw.data(), buffer.data(), raw.size(),
                         cudaMemcpyDeviceToHost),
              "download");
    std::vector<double> values(elements);
    for (int64_t i = 0; i < elements; ++i) {
      values[i] = LoadAs(raw.data() + i * es, c.dtype);
    }
    return values;
  };
  std::vector<float> lse_host(b * h * n);
  CheckCuda(cudaMemcpy(lse_host.data(), lse.data(), lse.bytes(),
                       cudaMemcpyDeviceToHost),
            "download lse");

  OracleProblem problem;
  problem.batch = b;
  problem.seq_len = n;
  problem.num_heads = h;
  problem.head_dim = d;
  problem.segment_lengths = c.segments;
  problem.dilation_rates = c.rates;
  problem.is_causal = c.causal;
  problem.softmax_scale = 1.0 / std::sqrt(static_cast<double>(d));
  std::vector<double> expected_out, expected_lse;
  OracleForward(problem, q, k, v, &expected_out, &expected_lse);
  const std::vector<double> out_host = download(out);
  EXPECT_LT(RelativeError(out_host, expected_out), ForwardTolerance(c.dtype));
  // Unselected rows are exactly zero with lse -inf; selected lse within
  // float32 accumulation error of the float64 value.
  int64_t lse_mismatches = 0;
  int64_t zero_mismatches = 0;
  for (int64_t i0 = 0; i0 < b; ++i0) {
    for (int64_t i2 = 0; i2 < h; ++i2) {
      for (int64_t i1 = 0; i1 < n; ++i1) {
        const int64_t at = (i0 * h + i2) * n + i1;
        const double want = expected_lse[at];
        const double got = lse_host[at];
        if (std::isinf(want)) {
          if (!(std::isinf(got) && got < 0)) ++lse_mismatches;
          for (int64_t i3 = 0; i3 < d; ++i3) {
            if (out_host[((i0 * n + i1) * h + i2) * d + i3] != 0.0) {
              ++zero_mismatches;
            }
          }
        } else if (!(std::fabs(got - want) <= 2e-3 * (1.0 + std::fabs(want)))) {
          ++lse_mismatches;
        }
      }
    }
  }
  EXPECT_EQ(lse_mismatches, 0);
  EXPECT_EQ(zero_mismatches, 0);

  std::vector<double> expected_grad_q, expected_grad_k, expected_grad_v;
  OracleBackward(problem, q, k, v, grad_out, &expected_grad_q, &expected_grad_k,
                 &expected_grad_v);
  EXPECT_LT(RelativeError(download(grad_q), expected_grad_q),
            GradientTolerance(c.dtype))
      << "grad_q";
  EXPECT_LT(RelativeError(download(grad_k), expected_grad_k),
            GradientTolerance(c.dtype))
      << "grad_k";
  EXPECT_LT(RelativeError(download(grad_v), expected_grad_v),
            GradientTolerance(c.dtype))
      << "grad_v";

  // The backward pass is deterministic: a second run is bitwise identical
  // (grad_q is where contributions of many thread blocks meet).
  const std::vector<double> first_grad_q = download(grad_q);
  const std::vector<double> first_grad_k = download(grad_k);
  const std::vector<double> first_grad_v = download(grad_v);
  grad_q.Poison();
  grad_k.Poison();
  grad_v.Poison();
  status =
      attention.Backward(inputs[0], inputs[1], inputs[2], view_of(out),
                         lse_view, view_of(grad_out_buffer), view_of(grad_q),
                         view_of(grad_k), view_of(grad_v), options);
  ASSERT_TRUE(status.ok()) << status;
  CheckCuda(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
  auto same_bits = [](const std::vector<double>& a,
                      const std::vector<double>& b) {
    return a.size() == b.size() &&
           std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0;
  };
  EXPECT_TRUE(same_bits(first_grad_q, download(grad_q))) << "grad_q";
  EXPECT_TRUE(same_bits(first_grad_k, download(grad_k))) << "grad_k";
  EXPECT_TRUE(same_bits(first_grad_v, download(grad_v))) << "grad_v";
  CheckCuda(cudaStreamDestroy(stream), "cudaStreamDestroy");
}

const DType kF16 = DType::kFloat16;
const DType kBF16 = DType::kBFloat16;
const DType kF32 = DType::kFloat32;

std::vector<Case> Cases() {
  return {
      {"d64_f16", 1, 256, 4, 64, {64, 128}, {1, 2}, kF16, false},
      {"d64_f16_causal", 1, 256, 4, 64, {64, 128}, {1, 2}, kF16, true},
      {"uneven_heads_bf16_causal",
       1,
       256,
       5,
       64,
       {32, 64, 128},
       {1, 2, 4},
       kBF16,
       true},
      {"same_rate_groups_f16",
       2,
       256,
       6,
       64,
       {64, 64, 128},
       {2, 2, 2},
       kF16,
       false},
      {"offset_past_segment_f16",
       1,
       64,
       3,
       64,
       {16, 16, 2},
       {1, 1, 4},
       kF16,
       true},
      {"d32_b2_f16_causal", 2, 512, 4, 32, {128, 256}, {1, 2}, kF16, true},
      {"d128_b2_bf16", 2, 512, 4, 128, {128, 512}, {1, 4}, kBF16, false},
      {"d128_f16_causal", 1, 512, 3, 128, {256, 512}, {1, 2}, kF16, true},
      {"d40_f16", 1, 256, 2, 40, {64, 256}, {1, 2}, kF16, false},
      {"d72_bf16_causal", 1, 256, 2, 72, {128, 256}, {2, 4}, kBF16, true},
      {"d256_f16_causal", 1, 256, 2, 256, {128, 256}, {1, 2}, kF16, true},
      {"d160_bf16", 1, 128, 2, 160, {64, 128}, {1, 2}, kBF16, false},
      {"long_segments_f16", 1, 1024, 2, 64, {512, 1024}, {1, 4}, kF16, false},
      // Sequences of 300 and 200 selected rows: several 64-row tiles, the
      // last one partial.
      {"partial_tiles_f16", 1, 600, 3, 64, {300, 600}, {1, 3}, kF16, false},
      {"partial_tiles_bf16_causal",
       2,
       600,
       3,
       64,
       {300, 600},
       {1, 3},
       kBF16,
       true},
      {"long_segments_bf16_causal",
       1,
       1024,
       2,
       64,
       {512, 1024},
       {1, 4},
       kBF16,
       true},
      {"packed_qkv_f16_causal",
       2,
       256,
       4,
       64,
       {64, 256},
       {1, 4},
       kF16,
       true,
       true},
      {"f32_causal", 1, 256, 3, 64, {64, 128, 256}, {1, 2, 4}, kF32, true},
      {"f32_d40_b2", 2, 128, 2, 40, {64, 128}, {1, 2}, kF32, false},
      {"d20_unaligned_f16", 1, 128, 2, 20, {64, 128}, {1, 2}, kF16, false},
      {"growing_scores_f16",
       1,
       1024,
       2,
       64,
       {512, 1024},
       {1, 2},
       kF16,
       false,
       false,
       12.0},
      {"growing_scores_bf16_causal",
       1,
       1024,
       2,
       64,
       {1024, 512},
       {1, 2},
       kBF16,
       true,
       false,
       12.0},
  };
}

INSTANTIATE_TEST_SUITE_P(
    Cases, DilatedAttentionCudaTest,
    ::testing::Combine(::testing::ValuesIn(Cases()),
                       ::testing::Values("improved", "standard")),
    [](const ::testing::TestParamInfo<std::tuple<Case, std::string>>& info) {
      return absl::StrCat(std::get<1>(info.param), "_",
                          std::get<0>(info.param).name);
    });

}  // namespace
}  // namespace dilated
