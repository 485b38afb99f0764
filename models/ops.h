// File: ops.h
//
// Element-wise steps of the transformer layers: activations and the residual
// addition, computed in float32 and stored in the tensors' dtype.

#ifndef MODELS_OPS_H_
#define MODELS_OPS_H_

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "models/tensor.h"

namespace dilated {
namespace models {

enum class Activation {
  kRelu,
  // The exact GELU, 0.5 x (1 + erf(x / sqrt(2))), PyTorch's default.
  kGelu,
};

// Returns the activation called "relu" or "gelu", or InvalidArgument naming
// the value.
absl::StatusOr<Activation> ParseActivation(absl::string_view name);

// Returns "relu" or "gelu".
const char* ActivationName(Activation activation);

// Applies `activation` to every element of `x`.
void ApplyActivation(Activation activation, Tensor* x);

// Adds `delta` to `x` element-wise (x += delta).
// REQUIRES: same shape and dtype.
void AddInPlace(const Tensor& delta, Tensor* x);

}  // namespace models
}  // namespace dilated

#endif  // MODELS_OPS_H_
