#include "models/tensor.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <new>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "factory/status_macros.h"
#include "kernels/numeric.h"
#include "memory/host_allocator.h"
#include "memory/pool_allocator.h"

namespace dilated {
namespace models {
namespace {

int64_t Product(const std::vector<int64_t>& shape) {
  int64_t product = 1;
  for (int64_t extent : shape) product *= extent;
  return product;
}

float LoadElement(const char* base, DType dtype, int64_t index) {
  switch (dtype) {
    case DType::kFloat32:
    default: {  // int32 and bool tensors never reach a float conversion
      float value;
      std::memcpy(&value, base + 4 * index, sizeof(value));
      return value;
    }
    case DType::kFloat16: {
      uint16_t bits;
      std::memcpy(&bits, base + 2 * index, sizeof(bits));
      return kernels::HalfToFloat(bits);
    }
    case DType::kBFloat16: {
      uint16_t bits;
      std::memcpy(&bits, base + 2 * index, sizeof(bits));
      return kernels::BFloat16ToFloat(bits);
    }
  }
  return 0.0f;
}

}  // namespace

namespace {

// Storage below this size comes from operator new: the pool pays off for
// blocks that the system would map and fault in afresh.
constexpr size_t kPooledBytes = size_t{1} << 20;
constexpr std::align_val_t kStorageAlignment{64};

memory::PoolAllocator& TensorPool() {
  // Never destroyed: tensors with static storage duration may outlive any
  // destructor order.
  static memory::PoolAllocator* pool =
      new memory::PoolAllocator(std::make_unique<memory::HostAllocator>());
  return *pool;
}

}  // namespace

void* Tensor::AllocateStorage(size_t bytes) {
  if (bytes < kPooledBytes) return ::operator new(bytes, kStorageAlignment);
  absl::StatusOr<void*> block =
      TensorPool().Allocate(bytes, static_cast<size_t>(kStorageAlignment));
  if (!block.ok()) throw std::bad_alloc();
  return *block;
}

void Tensor::DeallocateStorage(void* p, size_t bytes) {
  if (bytes < kPooledBytes) {
    ::operator delete(p, kStorageAlignment);
    return;
  }
  TensorPool().Deallocate(p, bytes, static_cast<size_t>(kStorageAlignment));
}

void ReleaseCachedTensorMemory() { TensorPool().ReleaseCached(); }

Tensor::Tensor() : shape_({0}) {}

Tensor Tensor::Uninitialized(DType dtype, std::vector<int64_t> shape) {
  DA_CHECK(shape.size() <= static_cast<size_t>(TensorView::kMaxRank),
           "tensor rank exceeds TensorView::kMaxRank");
  for (int64_t extent : shape) DA_CHECK(extent >= 0, "negative extent");
  Tensor tensor;
  tensor.dtype_ = dtype;
  tensor.num_elements_ = Product(shape);
  tensor.shape_ = std::move(shape);
  const int64_t bytes = tensor.num_elements_ * DTypeSize(dtype);
  tensor.storage_.resize((bytes + 3) / 4);
  return tensor;
}

Tensor Tensor::Zeros(DType dtype, std::vector<int64_t> shape) {
  Tensor tensor = Uninitialized(dtype, std::move(shape));
  std::fill(tensor.storage_.begin(), tensor.storage_.end(), 0.0f);
  return tensor;
}

Tensor Tensor::FromFloat32(std::vector<int64_t> shape,
                           const std::vector<float>& values) {
  Tensor tensor = Zeros(DType::kFloat32, std::move(shape));
  DA_CHECK(static_cast<int64_t>(values.size()) == tensor.num_elements_,
           "values.size() does not match the shape");
  std::copy(values.begin(), values.end(), tensor.storage_.begin());
  return tensor;
}

absl::StatusOr<Tensor> Tensor::CopyOf(const TensorView& view) {
  if (view.device.type != DeviceType::kCpu) {
    return absl::InvalidArgumentError(absl::StrCat(
        "expected a CPU tensor, got one on ", DeviceName(view.device)));
  }
  if (view.data == nullptr && view.NumElements() > 0) {
    return absl::InvalidArgumentError("tensor data is null");
  }
  std::vector<int64_t> shape(view.shape.begin(),
                             view.shape.begin() + view.rank);
  Tensor tensor = Zeros(view.dtype, shape);
  const int64_t element_size = DTypeSize(view.dtype);
  const char* src = static_cast<const char*>(view.data);
  char* dst = static_cast<char*>(tensor.mutable_data());
  std::vector<int64_t> index(view.rank, 0);
  for (int64_t i = 0; i < tensor.num_elements_; ++i) {
    int64_t offset = 0;
    for (int d = 0; d < view.rank; ++d) offset += index[d] * view.strides[d];
    std::memcpy(dst + i * element_size, src + offset * element_size,
                element_size);
    for (int d = view.rank - 1; d >= 0; --d) {
      if (++index[d] < shape[d]) break;
      index[d] = 0;
    }
  }
  return tensor;
}

int64_t Tensor::dim(int axis) const {
  const int resolved = axis < 0 ? axis + rank() : axis;
  DA_CHECK(resolved >= 0 && resolved < rank(), "axis out of range");
  return shape_[resolved];
}

std::string Tensor::ShapeString() const {
  return absl::StrCat("[", absl::StrJoin(shape_, ", "), "]");
}

const float* Tensor::Float32() const {
  DA_CHECK(dtype_ == DType::kFloat32, "Float32() on a 16-bit tensor");
  return storage_.data();
}

float* Tensor::MutableFloat32() {
  DA_CHECK(dtype_ == DType::kFloat32, "MutableFloat32() on a 16-bit tensor");
  return storage_.data();
}

TensorView Tensor::View() const {
  TensorView view;
  view.data = const_cast<float*>(storage_.data());
  view.dtype = dtype_;
  view.device = Device::Cpu();
  view.rank = rank();
  int64_t stride = 1;
  for (int d = rank() - 1; d >= 0; --d) {
    view.shape[d] = shape_[d];
    view.strides[d] = stride;
    stride *= shape_[d];
  }
  return view;
}

std::vector<float> Tensor::ToFloat32() const {
  std::vector<float> values(num_elements_);
  const char* base = static_cast<const char*>(data());
  for (int64_t i = 0; i < num_elements_; ++i) {
    values[i] = LoadElement(base, dtype_, i);
  }
  return values;
}

void Tensor::AssignFromFloat32(const std::vector<float>& values) {
  DA_CHECK(static_cast<int64_t>(values.size()) == num_elements_,
           "values.size() does not match the shape");
  char* base = static_cast<char*>(mutable_data());
  for (int64_t i = 0; i < num_elements_; ++i) {
    switch (dtype_) {
      case DType::kFloat32:
      default:  // int32 and bool tensors never reach a float conversion
        std::memcpy(base + 4 * i, &values[i], 4);
        break;
      case DType::kFloat16: {
        const uint16_t bits = kernels::FloatToHalf(values[i]);
        std::memcpy(base + 2 * i, &bits, 2);
        break;
      }
      case DType::kBFloat16: {
        const uint16_t bits = kernels::FloatToBFloat16(values[i]);
        std::memcpy(base + 2 * i, &bits, 2);
        break;
      }
    }
  }
}

}  // namespace models
}  // namespace dilated
