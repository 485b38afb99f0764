// Linear, LayerNorm and the element-wise ops against naive double-precision
// loops written here, in float32 and 16-bit storage.

#include <cmath>
#include <vector>

#include "gtest/gtest.h"
#include "models/init.h"
#include "models/layer_norm.h"
#include "models/linear.h"
#include "models/module.h"
#include "models/ops.h"
#include "models/state_dict.h"
#include "tests/models/model_test_util.h"
#include "tests/testing/compare.h"

namespace dilated {
namespace models {
namespace {

using ::dilated::models::testing::RandomTensor;
using ::dilated::models::testing::ToDoubles;
using ::dilated::testing::AllClose;
using ::dilated::testing::Tolerance;

// float32 sums of <= 64 products of values in [-1, 1]: well within 1e-5.
constexpr Tolerance kFloat32{1e-5, 1e-5};

void FillRandom(Parameter* p, uint32_t seed) {
  const Tensor t = RandomTensor(DType::kFloat32, p->shape, seed);
  p->values = t.ToFloat32();
}

std::vector<double> NaiveLinear(const std::vector<double>& x, int64_t rows,
                                const Parameter& w, const Parameter* b) {
  const int64_t out = w.shape[0], in = w.shape[1];
  std::vector<double> y(rows * out);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t o = 0; o < out; ++o) {
      double sum = b != nullptr ? b->values[o] : 0.0;
      for (int64_t i = 0; i < in; ++i)
        sum += x[r * in + i] * w.values[o * in + i];
      y[r * out + o] = sum;
    }
  }
  return y;
}

TEST(LinearTest, MatchesNaiveProductWithAndWithoutBias) {
  for (bool bias : {true, false}) {
    Linear linear(24, 40, bias);
    FillRandom(&linear.weight(), 1);
    if (bias) FillRandom(&linear.bias(), 2);
    const Tensor x = RandomTensor(DType::kFloat32, {2, 5, 24}, 3);
    const Tensor y = linear.Forward(x);
    EXPECT_EQ(y.shape(), (std::vector<int64_t>{2, 5, 40}));
    EXPECT_TRUE(AllClose(ToDoubles(y),
                         NaiveLinear(ToDoubles(x), 10, linear.weight(),
                                     bias ? &linear.bias() : nullptr),
                         kFloat32));
  }
}

TEST(LinearTest, SliceEqualsTheColumnsOfTheFullOutput) {
  Linear linear(16, 48, true);
  FillRandom(&linear.weight(), 4);
  FillRandom(&linear.bias(), 5);
  const Tensor x = RandomTensor(DType::kFloat32, {3, 16}, 6);
  const std::vector<double> full = ToDoubles(linear.Forward(x));
  const std::vector<double> slice = ToDoubles(linear.ForwardSlice(x, 16, 32));
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < 16; ++c) {
      EXPECT_EQ(slice[r * 16 + c], full[r * 48 + 16 + c]);
    }
  }
}

TEST(LinearTest, SixteenBitInputKeepsItsDtype) {
  for (DType dtype : {DType::kFloat16, DType::kBFloat16}) {
    Linear linear(32, 8, true);
    FillRandom(&linear.weight(), 7);
    FillRandom(&linear.bias(), 8);
    const Tensor x = RandomTensor(dtype, {4, 32}, 9);
    const Tensor y = linear.Forward(x);
    EXPECT_EQ(y.dtype(), dtype);
    // One rounding of the float32 result to the storage type: relative
    // 2^-11 (f16) or 2^-8 (bf16).
    const double eps = dtype == DType::kFloat16 ? 1.0 / 2048 : 1.0 / 256;
    EXPECT_TRUE(
        AllClose(ToDoubles(y),
                 NaiveLinear(ToDoubles(x), 4, linear.weight(), &linear.bias()),
                 {1e-4, eps}));
  }
}

TEST(LayerNormTest, MatchesNaiveNormalisation) {
  LayerNorm norm(20, 1e-5);
  std::vector<NamedParameter> params;
  norm.AppendParameters("", &params);
  FillRandom(params[0].parameter, 10);
  FillRandom(params[1].parameter, 11);
  const Tensor x = RandomTensor(DType::kFloat32, {3, 20}, 12);
  const std::vector<double> in = ToDoubles(x);
  std::vector<double> expected(in.size());
  for (int r = 0; r < 3; ++r) {
    double mean = 0.0, var = 0.0;
    for (int c = 0; c < 20; ++c) mean += in[r * 20 + c] / 20;
    for (int c = 0; c < 20; ++c) {
      var += (in[r * 20 + c] - mean) * (in[r * 20 + c] - mean) / 20;
    }
    for (int c = 0; c < 20; ++c) {
      expected[r * 20 + c] = (in[r * 20 + c] - mean) / std::sqrt(var + 1e-5) *
                                 params[0].parameter->values[c] +
                             params[1].parameter->values[c];
    }
  }
  EXPECT_TRUE(AllClose(ToDoubles(norm.Forward(x)), expected, kFloat32));
}

TEST(OpsTest, ReluAndExactGelu) {
  Tensor relu = Tensor::FromFloat32({4}, {-2.0f, -0.5f, 0.0f, 1.5f});
  ApplyActivation(Activation::kRelu, &relu);
  EXPECT_EQ(relu.ToFloat32(), (std::vector<float>{0.0f, 0.0f, 0.0f, 1.5f}));
  Tensor gelu = Tensor::FromFloat32({3}, {-1.0f, 0.0f, 2.0f});
  ApplyActivation(Activation::kGelu, &gelu);
  // 0.5 x (1 + erf(x / sqrt 2)) at -1, 0, 2 (erf-based, not the tanh form).
  EXPECT_TRUE(AllClose(ToDoubles(gelu),
                       {-0.15865525393145707, 0.0, 1.9544997361036416},
                       kFloat32));
}

TEST(OpsTest, ParseActivationNamesTheBadValue) {
  EXPECT_EQ(*ParseActivation("gelu"), Activation::kGelu);
  const absl::StatusOr<Activation> bad = ParseActivation("swish");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("\"swish\""), std::string::npos);
}

TEST(OpsTest, AddInPlace) {
  Tensor x = Tensor::FromFloat32({2}, {1.0f, 2.0f});
  AddInPlace(Tensor::FromFloat32({2}, {0.5f, -4.0f}), &x);
  EXPECT_EQ(x.ToFloat32(), (std::vector<float>{1.5f, -2.0f}));
}

TEST(TensorTest, CopyOfAStridedViewIsRowMajor) {
  std::vector<float> data = {0, 1, 2, 3, 4, 5};
  TensorView view = Tensor::FromFloat32({2, 3}, data).View();
  // The transpose: shape [3, 2], strides [1, 3].
  view.shape[0] = 3;
  view.shape[1] = 2;
  view.strides[0] = 1;
  view.strides[1] = 3;
  const Tensor backing = Tensor::FromFloat32({6}, data);
  view.data = const_cast<void*>(backing.data());
  absl::StatusOr<Tensor> copy = Tensor::CopyOf(view);
  ASSERT_TRUE(copy.ok()) << copy.status();
  EXPECT_EQ(copy->ToFloat32(), (std::vector<float>{0, 3, 1, 4, 2, 5}));
}

TEST(TensorTest, CopyOfRejectsCudaViews) {
  TensorView view = Tensor::FromFloat32({1}, {0.0f}).View();
  view.device = Device::Cuda(0);
  EXPECT_EQ(Tensor::CopyOf(view).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace models
}  // namespace dilated
