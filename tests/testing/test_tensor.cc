#include "tests/testing/test_tensor.h"

#include <cstring>

#include "kernels/numeric.h"

namespace dilated {
namespace testing {
namespace {

constexpr unsigned char kSentinel = 0x7b;

}  // namespace

double RoundTo(DType dtype, double value) {
  const float f = static_cast<float>(value);
  switch (dtype) {
    case DType::kFloat32:
      return f;
    case DType::kFloat16:
      return kernels::HalfToFloat(kernels::FloatToHalf(f));
    case DType::kBFloat16:
      return kernels::BFloat16ToFloat(kernels::FloatToBFloat16(f));
    default:  // Index and mask dtypes: never attention tensors.
      break;
  }
  return value;
}

std::vector<double> RandomValues(int64_t count, double range, DType dtype,
                                 std::mt19937* rng) {
  std::uniform_real_distribution<double> uniform(-range, range);
  std::vector<double> values(count);
  for (double& v : values) v = RoundTo(dtype, uniform(*rng));
  return values;
}

TestTensor::TestTensor(TestDevice* device, DType dtype,
                       std::vector<int64_t> shape, Layout layout)
    : device_(device) {
  view_.dtype = dtype;
  view_.device = device->device();
  view_.rank = static_cast<int>(shape.size());
  // Padding per axis, innermost last: none on the last axis (it must stay
  // contiguous), a few elements on every other axis.
  int64_t stride = 1;
  for (int d = view_.rank - 1; d >= 0; --d) {
    view_.shape[d] = shape[d];
    view_.strides[d] = stride;
    const int64_t gap =
        (layout == Layout::kPadded && d < view_.rank - 1) ? 3 + d : 0;
    stride = stride * shape[d] + gap;
  }
  storage_elements_ = stride + 1;
  const size_t bytes = storage_elements_ * DTypeSize(dtype);
  view_.data = device_->Allocate(bytes);
  std::vector<unsigned char> sentinel(bytes, kSentinel);
  device_->CopyToDevice(view_.data, sentinel.data(), bytes);
}

TestTensor::~TestTensor() { device_->Free(view_.data); }

std::vector<int64_t> TestTensor::ElementOffsets() const {
  std::vector<int64_t> offsets(NumElements());
  std::vector<int64_t> index(view_.rank, 0);
  for (int64_t e = 0; e < NumElements(); ++e) {
    int64_t offset = 0;
    for (int d = 0; d < view_.rank; ++d) offset += index[d] * view_.strides[d];
    offsets[e] = offset;
    for (int d = view_.rank - 1; d >= 0; --d) {
      if (++index[d] < view_.shape[d]) break;
      index[d] = 0;
    }
  }
  return offsets;
}

void TestTensor::Upload(const std::vector<double>& values) {
  const int64_t size = DTypeSize(view_.dtype);
  std::vector<unsigned char> host(storage_elements_ * size);
  device_->CopyToHost(host.data(), view_.data, host.size());
  const std::vector<int64_t> offsets = ElementOffsets();
  for (int64_t e = 0; e < NumElements(); ++e) {
    unsigned char* dst = host.data() + offsets[e] * size;
    const float f = static_cast<float>(values[e]);
    if (view_.dtype == DType::kFloat32) {
      std::memcpy(dst, &f, 4);
    } else {
      const uint16_t bits = view_.dtype == DType::kFloat16
                                ? kernels::FloatToHalf(f)
                                : kernels::FloatToBFloat16(f);
      std::memcpy(dst, &bits, 2);
    }
  }
  device_->CopyToDevice(view_.data, host.data(), host.size());
}

std::vector<double> TestTensor::Download() const {
  const int64_t size = DTypeSize(view_.dtype);
  std::vector<unsigned char> host(storage_elements_ * size);
  device_->Synchronize();
  device_->CopyToHost(host.data(), view_.data, host.size());
  const std::vector<int64_t> offsets = ElementOffsets();
  std::vector<double> values(NumElements());
  for (int64_t e = 0; e < NumElements(); ++e) {
    const unsigned char* src = host.data() + offsets[e] * size;
    if (view_.dtype == DType::kFloat32) {
      float f;
      std::memcpy(&f, src, 4);
      values[e] = f;
    } else {
      uint16_t bits;
      std::memcpy(&bits, src, 2);
      values[e] = view_.dtype == DType::kFloat16
                      ? kernels::HalfToFloat(bits)
                      : kernels::BFloat16ToFloat(bits);
    }
  }
  return values;
}

bool TestTensor::PaddingIntact() const {
  const int64_t size = DTypeSize(view_.dtype);
  std::vector<unsigned char> host(storage_elements_ * size);
  device_->Synchronize();
  device_->CopyToHost(host.data(), view_.data, host.size());
  std::vector<bool> is_element(storage_elements_, false);
  for (int64_t offset : ElementOffsets()) is_element[offset] = true;
  for (int64_t e = 0; e < storage_elements_; ++e) {
    if (is_element[e]) continue;
    for (int64_t byte = 0; byte < size; ++byte) {
      if (host[e * size + byte] != kSentinel) return false;
    }
  }
  return true;
}

}  // namespace testing
}  // namespace dilated
