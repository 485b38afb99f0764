// CudaLinear and CudaLayerNorm on the GPU against float64 references on the
// host fed the same (rounded) inputs: the bias and residual epilogues, the
// stacked projections and their output slices, LayerNorm with a fused
// activation on whole rows and on a column range, and every LayerNorm
// kernel (a warp per row and 128 threads per row for aligned rows that fit
// their registers, the three-pass block kernel for the rest); and the
// StageTimer the layers of one placement record on.

#include "models/cuda/cuda_layers.h"

#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "models/cuda/device_ops.h"
#include "models/cuda/device_tensor.h"
#include "models/cuda/stage_timer.h"
#include "tests/testing/compare.h"

namespace dilated {
namespace models {
namespace {

using ::dilated::testing::AllClose;
using ::dilated::testing::OutputTolerance;
using ::dilated::testing::Tolerance;

std::vector<float> Pattern(int64_t count, uint32_t seed) {
  std::vector<float> values(count);
  uint32_t state = seed;
  for (float& v : values) {
    state = state * 1664525u + 1013904223u;
    v = static_cast<float>(state >> 8) / 8388608.0f - 1.0f;  // [-1, 1)
  }
  return values;
}

Parameter MakeParameter(std::vector<int64_t> shape, uint32_t seed) {
  Parameter p;
  p.shape = shape;
  p.values = Pattern(p.NumElements(), seed);
  return p;
}

// A host tensor of `dtype` holding the pattern rounded to it.
Tensor HostTensor(DType dtype, std::vector<int64_t> shape, uint32_t seed) {
  Tensor t = Tensor::Zeros(dtype, shape);
  t.AssignFromFloat32(Pattern(t.NumElements(), seed));
  return t;
}

double RoundTo(DType dtype, double value) {
  Tensor t = Tensor::Zeros(dtype, {1});
  t.AssignFromFloat32({static_cast<float>(value)});
  return t.ToFloat32()[0];
}

std::vector<double> Doubles(const std::vector<float>& values) {
  return std::vector<double>(values.begin(), values.end());
}

class CudaLayersTest : public ::testing::TestWithParam<DType> {
 protected:
  void SetUp() override {
    ASSERT_EQ(cudaStreamCreate(&stream_), cudaSuccess);
    absl::StatusOr<CudaPlacement> placement = PlaceOn(0, GetParam());
    ASSERT_TRUE(placement.ok()) << placement.status();
    placement_ = *placement;
  }
  void TearDown() override {
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
  }

  std::vector<float> Run(const absl::StatusOr<DeviceTensor>& y) {
    EXPECT_TRUE(y.ok()) << y.status();
    if (!y.ok()) return {};
    absl::StatusOr<Tensor> host = y->Download(stream_);
    EXPECT_TRUE(host.ok()) << host.status();
    return host.ok() ? host->ToFloat32() : std::vector<float>{};
  }

  cudaStream_t stream_ = nullptr;
  CudaPlacement placement_;
};

// The stacked layer's slice [begin, end) plus a residual equals the
// reference x W^T + b + residual of the separate layers' parameters, with W
// and b rounded to the storage type.
TEST_P(CudaLayersTest, StackedLinearSliceWithResidual) {
  const DType dtype = GetParam();
  constexpr int64_t kRows = 37, kIn = 24;
  const std::vector<int64_t> outs = {16, 8, 40};
  ParameterLookup params;
  std::vector<Parameter> parts;
  parts.reserve(2 * outs.size());
  std::vector<std::string> prefixes;
  for (size_t i = 0; i < outs.size(); ++i) {
    prefixes.push_back("p" + std::to_string(i) + ".");
    parts.push_back(MakeParameter({outs[i], kIn}, 10 + i));
    params[prefixes[i] + "weight"] = &parts.back();
    parts.push_back(MakeParameter({outs[i]}, 20 + i));
    params[prefixes[i] + "bias"] = &parts.back();
  }
  absl::StatusOr<CudaLinear> linear =
      CudaLinear::UploadStacked(params, prefixes, true, placement_, stream_);
  ASSERT_TRUE(linear.ok()) << linear.status();
  ASSERT_EQ(linear->out_features(), 64);

  const Tensor x = HostTensor(dtype, {1, kRows, kIn}, 1);
  constexpr int64_t kBegin = 16, kEnd = 64;  // layers p1 and p2
  const Tensor residual = HostTensor(dtype, {1, kRows, kEnd - kBegin}, 2);
  absl::StatusOr<DeviceTensor> x_device = DeviceTensor::Upload(x, 0, stream_);
  absl::StatusOr<DeviceTensor> residual_device =
      DeviceTensor::Upload(residual, 0, stream_);
  ASSERT_TRUE(x_device.ok() && residual_device.ok());
  const std::vector<float> actual = Run(linear->ForwardSlice(
      *x_device, kBegin, kEnd, &*residual_device, stream_));

  const std::vector<float> xs = x.ToFloat32();
  const std::vector<float> rs = residual.ToFloat32();
  std::vector<double> expected;
  for (int64_t r = 0; r < kRows; ++r) {
    for (int64_t o = kBegin; o < kEnd; ++o) {
      const int part = o < 24 ? 1 : 2;
      const int64_t local = o - (part == 1 ? 16 : 24);
      const Parameter& w = parts[2 * part];
      const Parameter& b = parts[2 * part + 1];
      double sum = RoundTo(dtype, b.values[local]);
      for (int64_t i = 0; i < kIn; ++i) {
        sum += xs[r * kIn + i] * RoundTo(dtype, w.values[local * kIn + i]);
      }
      expected.push_back(sum + rs[r * (kEnd - kBegin) + (o - kBegin)]);
    }
  }
  EXPECT_TRUE(AllClose(Doubles(actual), expected, OutputTolerance(dtype)));
}

// A residual of the wrong shape is InvalidArgument naming both shapes.
TEST_P(CudaLayersTest, ResidualOfWrongShapeIsInvalidArgument) {
  Parameter w = MakeParameter({8, 16}, 3);
  ParameterLookup params{{"l.weight", &w}};
  absl::StatusOr<CudaLinear> linear =
      CudaLinear::Upload(params, "l.", false, placement_, stream_);
  ASSERT_TRUE(linear.ok()) << linear.status();
  absl::StatusOr<DeviceTensor> x =
      DeviceTensor::Upload(HostTensor(GetParam(), {1, 4, 16}, 4), 0, stream_);
  absl::StatusOr<DeviceTensor> residual =
      DeviceTensor::Upload(HostTensor(GetParam(), {1, 4, 9}, 5), 0, stream_);
  ASSERT_TRUE(x.ok() && residual.ok());
  absl::StatusOr<DeviceTensor> y = linear->ForwardAdd(*x, *residual, stream_);
  EXPECT_EQ(y.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(y.status().message().find("[1, 4, 9]"), std::string::npos)
      << y.status();
  cudaStreamSynchronize(stream_);
}

// Returns the float64 LayerNorm of activation(row) with the parameters.
std::vector<double> ReferenceNorm(const std::vector<float>& row,
                                  const std::vector<float>& weight,
                                  const std::vector<float>& bias,
                                  gpu::RowActivation activation) {
  std::vector<double> a(row.begin(), row.end());
  for (double& v : a) {
    if (activation == gpu::RowActivation::kRelu) v = v > 0 ? v : 0;
    if (activation == gpu::RowActivation::kGelu) {
      v = 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0)));
    }
  }
  double mean = 0, variance = 0;
  for (double v : a) mean += v;
  mean /= a.size();
  for (double v : a) variance += (v - mean) * (v - mean);
  variance /= a.size();
  std::vector<double> y;
  for (size_t c = 0; c < a.size(); ++c) {
    y.push_back((a[c] - mean) / std::sqrt(variance + 1e-5) * weight[c] +
                bias[c]);
  }
  return y;
}

struct NormCase {
  int64_t rows, width, column, features;
  gpu::RowActivation activation;
};

// Every case through CudaLayerNorm on columns [column, column + features)
// of a [rows, width] tensor; the other columns must stay as they were.
TEST_P(CudaLayersTest, LayerNormMatchesReference) {
  const DType dtype = GetParam();
  const std::vector<NormCase> cases = {
      {5, 768, 0, 768, gpu::RowActivation::kNone},    // one warp per row
      {7, 1024, 0, 1024, gpu::RowActivation::kNone},  // 4 vectors a lane
      {3, 3072, 0, 3072, gpu::RowActivation::kRelu},  // 128 threads per row
      {3, 4096, 0, 4096, gpu::RowActivation::kGelu},  // 4 vectors a thread
      {4, 96, 32, 32, gpu::RowActivation::kGelu},     // a column range
      {2, 6144, 0, 6144, gpu::RowActivation::kNone},  // 8 vectors a thread
      {2, 9000, 0, 9000, gpu::RowActivation::kGelu},  // three-pass kernel
      // More rows than the resident grid holds: blocks walk several rows.
      {40000, 64, 0, 64, gpu::RowActivation::kRelu},
      {3, 60, 18, 20, gpu::RowActivation::kNone},  // unaligned columns
  };
  for (const NormCase& c : cases) {
    SCOPED_TRACE(::testing::Message() << c.features << " of " << c.width
                                      << " columns from " << c.column);
    Parameter w = MakeParameter({c.features}, 6);
    Parameter b = MakeParameter({c.features}, 7);
    ParameterLookup params{{"n.weight", &w}, {"n.bias", &b}};
    absl::StatusOr<CudaLayerNorm> norm =
        CudaLayerNorm::Upload(params, "n.", 1e-5, placement_, stream_);
    ASSERT_TRUE(norm.ok()) << norm.status();
    const Tensor x = HostTensor(dtype, {1, c.rows, c.width}, 8);
    absl::StatusOr<DeviceTensor> device = DeviceTensor::Upload(x, 0, stream_);
    ASSERT_TRUE(device.ok()) << device.status();
    absl::Status status;
    if (c.column == 0 && c.features == c.width) {
      status = norm->ForwardInPlace(&*device, stream_, c.activation);
    } else {
      // ForwardColumnsInPlace has no activation: with one, run the kernel.
      gpu::LayerNormArgs args;
      const int64_t offset = c.column * DTypeSize(dtype);
      args.x = static_cast<char*>(device->mutable_data()) + offset;
      args.x_row_stride = c.width;
      args.y = static_cast<char*>(device->mutable_data()) + offset;
      args.y_row_stride = c.width;
      args.rows = c.rows;
      args.features = c.features;
      absl::StatusOr<DeviceTensor> wd =
          DeviceTensor::UploadParameter(w, DType::kFloat32, 0, stream_);
      absl::StatusOr<DeviceTensor> bd =
          DeviceTensor::UploadParameter(b, DType::kFloat32, 0, stream_);
      ASSERT_TRUE(wd.ok() && bd.ok());
      args.weight = static_cast<const float*>(wd->data());
      args.bias = static_cast<const float*>(bd->data());
      args.activation = c.activation;
      args.dtype = dtype;
      if (c.activation == gpu::RowActivation::kNone) {
        status = norm->ForwardColumnsInPlace(&*device, c.column, stream_);
      } else {
        ASSERT_EQ(gpu::LayerNormRows(args, stream_), cudaSuccess);
      }
      ASSERT_EQ(cudaStreamSynchronize(stream_), cudaSuccess);
    }
    ASSERT_TRUE(status.ok()) << status;
    absl::StatusOr<Tensor> y = device->Download(stream_);
    ASSERT_TRUE(y.ok()) << y.status();
    const std::vector<float> xs = x.ToFloat32();
    const std::vector<float> ys = y->ToFloat32();
    std::vector<double> expected, actual;
    for (int64_t r = 0; r < c.rows; ++r) {
      const auto row = xs.begin() + r * c.width;
      const std::vector<double> normed = ReferenceNorm(
          std::vector<float>(row + c.column, row + c.column + c.features),
          w.values, b.values, c.activation);
      for (int64_t col = 0; col < c.width; ++col) {
        const bool inside = col >= c.column && col < c.column + c.features;
        expected.push_back(inside ? normed[col - c.column] : row[col]);
        actual.push_back(ys[r * c.width + col]);
      }
    }
    // Outputs reach |3| (weights and bias in [-1, 1), normalised inputs of a
    // few units): the storage type's rounding at that size, plus float32
    // sums over up to 9000 terms.
    const Tolerance base = OutputTolerance(dtype);
    EXPECT_TRUE(
        AllClose(actual, expected, {3 * base.absolute + 1e-5, base.relative}));
  }
}

// The placement's StageTimer, once enabled, times the products and
// LayerNorms of its layers by kind, and starts over after each Collect().
TEST_P(CudaLayersTest, StageTimerSumsStagesByKind) {
  Parameter w = MakeParameter({64, 64}, 9);
  Parameter g = MakeParameter({64}, 10);
  Parameter b = MakeParameter({64}, 11);
  ParameterLookup params{{"l.weight", &w}, {"n.weight", &g}, {"n.bias", &b}};
  absl::StatusOr<CudaLinear> linear =
      CudaLinear::Upload(params, "l.", false, placement_, stream_);
  absl::StatusOr<CudaLayerNorm> norm =
      CudaLayerNorm::Upload(params, "n.", 1e-5, placement_, stream_);
  absl::StatusOr<DeviceTensor> x = DeviceTensor::Upload(
      HostTensor(GetParam(), {1, 4096, 64}, 12), 0, stream_);
  ASSERT_TRUE(linear.ok() && norm.ok() && x.ok());
  StageTimer& timer = *placement_.stage_timer;

  // Disabled: nothing is recorded.
  ASSERT_TRUE(linear->Forward(*x, stream_).ok());
  absl::StatusOr<StageTimes> idle = timer.Collect();
  ASSERT_TRUE(idle.ok()) << idle.status();
  EXPECT_EQ(idle->linear_product_ms, 0.0);

  timer.Enable();
  ASSERT_TRUE(linear->Forward(*x, stream_).ok());
  ASSERT_TRUE(linear->Forward(*x, stream_).ok());
  ASSERT_TRUE(norm->ForwardInPlace(&*x, stream_).ok());
  absl::StatusOr<StageTimes> times = timer.Collect();
  ASSERT_TRUE(times.ok()) << times.status();
  EXPECT_GT(times->linear_product_ms, 0.0);
  EXPECT_GT(times->layer_norm_ms, 0.0);
  EXPECT_EQ(times->attention_ms, 0.0);

  absl::StatusOr<StageTimes> again = timer.Collect();
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->linear_product_ms, 0.0);
  EXPECT_EQ(again->layer_norm_ms, 0.0);

  // Stages do not nest, and an End needs a Begin.
  ASSERT_TRUE(timer.Begin(Stage::kAttention, stream_).ok());
  EXPECT_EQ(timer.Begin(Stage::kAttention, stream_).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(timer.Collect().status().code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(timer.End(stream_).ok());
  EXPECT_EQ(timer.End(stream_).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(timer.Collect().ok());
}

INSTANTIATE_TEST_SUITE_P(Dtypes, CudaLayersTest,
                         ::testing::Values(DType::kFloat32, DType::kFloat16,
                                           DType::kBFloat16),
                         [](const ::testing::TestParamInfo<DType>& info) {
                           return std::string(DTypeName(info.param));
                         });

}  // namespace
}  // namespace models
}  // namespace dilated
