// Views of PyTorch tensors (LibTorch's stable ABI) as the library's
// TensorView: same memory, no copy.

#ifndef DILATED_PYTHON_OPS_TENSOR_CONVERSION_H_
#define DILATED_PYTHON_OPS_TENSOR_CONVERSION_H_

#include <torch/csrc/stable/tensor.h>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "attention/tensor.h"

namespace dilated {
namespace torch_ops {

// A view of `tensor` (float32, float16, bfloat16, int32 or bool; CPU or
// CUDA; any strides). InvalidArgument naming `name` for another dtype or
// device, or more than TensorView::kMaxRank dimensions.
absl::StatusOr<TensorView> ViewOf(const torch::stable::Tensor& tensor,
                                  absl::string_view name);

}  // namespace torch_ops
}  // namespace dilated

#endif  // DILATED_PYTHON_OPS_TENSOR_CONVERSION_H_
