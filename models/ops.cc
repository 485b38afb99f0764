#include "models/ops.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "factory/status_macros.h"

namespace dilated {
namespace models {
namespace {

void ActivateFloat32(Activation activation, float* x, int64_t count) {
  if (activation == Activation::kRelu) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < count; ++i) x[i] = std::max(x[i], 0.0f);
    return;
  }
  constexpr float kInverseSqrt2 = 0.70710678118654752f;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < count; ++i) {
    x[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * kInverseSqrt2));
  }
}

}  // namespace

absl::StatusOr<Activation> ParseActivation(absl::string_view name) {
  if (name == "relu") return Activation::kRelu;
  if (name == "gelu") return Activation::kGelu;
  return absl::InvalidArgumentError(absl::StrCat(
      "activation must be \"relu\" or \"gelu\", got \"", name, "\""));
}

const char* ActivationName(Activation activation) {
  return activation == Activation::kRelu ? "relu" : "gelu";
}

void ApplyActivation(Activation activation, Tensor* x) {
  if (x->dtype() == DType::kFloat32) {
    ActivateFloat32(activation, x->MutableFloat32(), x->NumElements());
    return;
  }
  std::vector<float> values = x->ToFloat32();
  ActivateFloat32(activation, values.data(), x->NumElements());
  x->AssignFromFloat32(values);
}

void AddInPlace(const Tensor& delta, Tensor* x) {
  DA_CHECK(delta.shape() == x->shape() && delta.dtype() == x->dtype(),
           "AddInPlace needs tensors of the same shape and dtype");
  if (x->dtype() == DType::kFloat32) {
    float* out = x->MutableFloat32();
    const float* in = delta.Float32();
    const int64_t count = x->NumElements();
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < count; ++i) out[i] += in[i];
    return;
  }
  std::vector<float> sum = x->ToFloat32();
  const std::vector<float> in = delta.ToFloat32();
  for (size_t i = 0; i < sum.size(); ++i) sum[i] += in[i];
  x->AssignFromFloat32(sum);
}

}  // namespace models
}  // namespace dilated
