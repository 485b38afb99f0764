// File: tensor.h
//
// TensorView: a non-owning view of a strided tensor, compatible with DLPack's
// DLTensor, so that PyTorch, JAX or CuPy tensors reach the library without a
// copy.
//
//   DLManagedTensor* managed = ...;  // e.g. from torch.utils.dlpack.to_dlpack
//   absl::StatusOr<TensorView> q =
//       TensorView::FromDLTensor(managed->dl_tensor);
//
// Strides are counted in elements, as in DLPack.

#ifndef ATTENTION_TENSOR_H_
#define ATTENTION_TENSOR_H_

#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>

#include "absl/status/statusor.h"
#include "base/device.h"
#include "dlpack/dlpack.h"
#include "kernels/dilated_params.h"

namespace dilated {

using DType = kernels::DataType;

// Returns "float32", "float16", "bfloat16", "int32" or "bool".
const char* DTypeName(DType dtype);
// Returns the size of one element in bytes.
int64_t DTypeSize(DType dtype);

struct TensorView {
  static constexpr int kMaxRank = 8;

  void* data = nullptr;
  DType dtype = DType::kFloat32;
  Device device;
  int rank = 0;
  std::array<int64_t, kMaxRank> shape{};
  std::array<int64_t, kMaxRank> strides{};  // In elements.

  // Returns a row-major (contiguous) view of `data`.
  // REQUIRES: shape.size() <= kMaxRank.
  static TensorView Contiguous(void* data, DType dtype,
                               std::initializer_list<int64_t> shape,
                               Device device = Device::Cpu());

  // Returns a view of `tensor`, or InvalidArgument for a dtype, device or rank
  // the library does not handle. Null strides mean row-major; byte_offset is
  // folded into `data`.
  static absl::StatusOr<TensorView> FromDLTensor(const DLTensor& tensor);

  // Returns a DLTensor that points into this view's shape and strides: it is
  // valid as long as this view is alive and unchanged.
  DLTensor ToDLTensor() const;

  // Returns the number of elements (the product of the shape).
  int64_t NumElements() const;

  // Returns the shape as "[2, 64, 8, 32]".
  std::string ShapeString() const;
};

}  // namespace dilated

#endif  // ATTENTION_TENSOR_H_
