#include "attention/tensor.h"

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/types/span.h"
#include "factory/status_macros.h"

namespace dilated {
namespace {

// DLPack's kDLBool (type code 6, DLPack 0.8 on), which the DLPack header
// this library builds against predates. PyTorch exports bool tensors with it.
constexpr uint8_t kDLBoolCode = 6;

}  // namespace

const char* DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
      return "float32";
    case DType::kFloat16:
      return "float16";
    case DType::kBFloat16:
      return "bfloat16";
    case DType::kInt32:
      return "int32";
    case DType::kBool:
      return "bool";
  }
  return "unknown";
}

int64_t DTypeSize(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
    case DType::kInt32:
      return 4;
    case DType::kFloat16:
    case DType::kBFloat16:
      return 2;
    case DType::kBool:
      return 1;
  }
  return 0;
}

TensorView TensorView::Contiguous(void* data, DType dtype,
                                  std::initializer_list<int64_t> shape,
                                  Device device) {
  DA_CHECK(shape.size() <= static_cast<size_t>(kMaxRank), "rank too large");
  TensorView view;
  view.data = data;
  view.dtype = dtype;
  view.device = device;
  view.rank = static_cast<int>(shape.size());
  int i = 0;
  for (int64_t extent : shape) view.shape[i++] = extent;
  int64_t stride = 1;
  for (int d = view.rank - 1; d >= 0; --d) {
    view.strides[d] = stride;
    stride *= view.shape[d];
  }
  return view;
}

absl::StatusOr<TensorView> TensorView::FromDLTensor(const DLTensor& tensor) {
  TensorView view;
  const DLDataType t = tensor.dtype;
  if (t.lanes != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("DLTensor dtype lanes must be 1, got ", t.lanes));
  }
  if (t.code == kDLFloat && t.bits == 32) {
    view.dtype = DType::kFloat32;
  } else if (t.code == kDLFloat && t.bits == 16) {
    view.dtype = DType::kFloat16;
  } else if (t.code == kDLBfloat && t.bits == 16) {
    view.dtype = DType::kBFloat16;
  } else if (t.code == kDLInt && t.bits == 32) {
    view.dtype = DType::kInt32;
  } else if ((t.code == kDLBoolCode || t.code == kDLUInt) && t.bits == 8) {
    view.dtype = DType::kBool;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "DLTensor dtype (code ", t.code, ", bits ", t.bits,
        ") is not supported; expected float32, float16, bfloat16, int32 or "
        "bool"));
  }
  switch (tensor.device.device_type) {
    case kDLCPU:
      view.device = Device::Cpu();
      break;
    case kDLCUDA:
      view.device = Device::Cuda(tensor.device.device_id);
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("DLTensor device_type ", tensor.device.device_type,
                       " is not supported; expected kDLCPU or kDLCUDA"));
  }
  if (tensor.ndim < 0 || tensor.ndim > kMaxRank) {
    return absl::InvalidArgumentError(absl::StrCat(
        "DLTensor ndim ", tensor.ndim, " is outside [0, ", kMaxRank, "]"));
  }
  view.rank = tensor.ndim;
  int64_t stride = 1;
  for (int d = view.rank - 1; d >= 0; --d) {
    view.shape[d] = tensor.shape[d];
    view.strides[d] = tensor.strides != nullptr ? tensor.strides[d] : stride;
    stride *= tensor.shape[d];
  }
  view.data = static_cast<char*>(tensor.data) + tensor.byte_offset;
  return view;
}

DLTensor TensorView::ToDLTensor() const {
  DLTensor tensor;
  tensor.data = data;
  tensor.device.device_type =
      device.type == DeviceType::kCpu ? kDLCPU : kDLCUDA;
  tensor.device.device_id = device.index;
  tensor.ndim = rank;
  switch (dtype) {
    case DType::kBFloat16:
      tensor.dtype.code = kDLBfloat;
      break;
    case DType::kInt32:
      tensor.dtype.code = kDLInt;
      break;
    case DType::kBool:
      tensor.dtype.code = kDLBoolCode;
      break;
    default:
      tensor.dtype.code = kDLFloat;
  }
  tensor.dtype.bits = static_cast<uint8_t>(DTypeSize(dtype) * 8);
  tensor.dtype.lanes = 1;
  tensor.shape = const_cast<int64_t*>(shape.data());
  tensor.strides = const_cast<int64_t*>(strides.data());
  tensor.byte_offset = 0;
  return tensor;
}

int64_t TensorView::NumElements() const {
  int64_t count = 1;
  for (int d = 0; d < rank; ++d) count *= shape[d];
  return count;
}

std::string TensorView::ShapeString() const {
  return absl::StrCat(
      "[", absl::StrJoin(absl::MakeConstSpan(shape.data(), rank), ", "), "]");
}

}  // namespace dilated
