#include "python/ops/tensor_conversion.h"

#include <torch/csrc/stable/tensor.h>
#include <torch/headeronly/core/ScalarType.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "attention/tensor.h"
#include "base/device.h"

namespace dilated {
namespace torch_ops {
namespace {

using torch::headeronly::ScalarType;

absl::StatusOr<DType> DTypeOf(ScalarType type, absl::string_view name) {
  switch (type) {
    case ScalarType::Float:
      return DType::kFloat32;
    case ScalarType::Half:
      return DType::kFloat16;
    case ScalarType::BFloat16:
      return DType::kBFloat16;
    case ScalarType::Int:
      return DType::kInt32;
    case ScalarType::Bool:
      return DType::kBool;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat(name, ": dtype ", torch::headeronly::toString(type),
                       " is not supported (float32, float16 or bfloat16; int32 "
                       "cu_seqlens, bool masks)"));
  }
}

}  // namespace

absl::StatusOr<TensorView> ViewOf(const torch::stable::Tensor& tensor,
                                  absl::string_view name) {
  TensorView view;
  const auto dtype = DTypeOf(tensor.scalar_type(), name);
  if (!dtype.ok()) return dtype.status();
  view.dtype = *dtype;
  if (tensor.is_cpu()) {
    view.device = Device::Cpu();
  } else if (tensor.is_cuda()) {
    view.device = Device::Cuda(tensor.get_device_index());
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": only CPU and CUDA tensors are supported"));
  }
  const int64_t rank = tensor.dim();
  if (rank > TensorView::kMaxRank) {
    return absl::InvalidArgumentError(absl::StrCat(
        name, ": ", rank, " dimensions, at most ", TensorView::kMaxRank));
  }
  view.rank = static_cast<int>(rank);
  for (int64_t i = 0; i < rank; ++i) {
    view.shape[i] = tensor.size(i);
    view.strides[i] = tensor.stride(i);
  }
  view.data = tensor.data_ptr();
  return view;
}

}  // namespace torch_ops
}  // namespace dilated
