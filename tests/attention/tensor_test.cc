#include "attention/tensor.h"

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dilated {
namespace {

using ::testing::HasSubstr;

DLTensor MakeDl(void* data, DLDataType dtype, int64_t* shape, int ndim,
                int64_t* strides) {
  DLTensor t{};
  t.data = data;
  t.device = {kDLCPU, 0};
  t.ndim = ndim;
  t.dtype = dtype;
  t.shape = shape;
  t.strides = strides;
  t.byte_offset = 0;
  return t;
}

TEST(TensorView, ContiguousStridesAreRowMajor) {
  float data[24];
  const TensorView v = TensorView::Contiguous(data, DType::kFloat32, {2, 3, 4});
  EXPECT_EQ(v.rank, 3);
  EXPECT_EQ(v.strides[0], 12);
  EXPECT_EQ(v.strides[1], 4);
  EXPECT_EQ(v.strides[2], 1);
  EXPECT_EQ(v.NumElements(), 24);
  EXPECT_EQ(v.ShapeString(), "[2, 3, 4]");
}

TEST(TensorView, FromDLTensorWithNullStridesIsRowMajor) {
  uint16_t data[2 * 5 * 3 * 8];
  int64_t shape[] = {2, 5, 3, 8};
  DLTensor dl = MakeDl(data, {kDLBfloat, 16, 1}, shape, 4, nullptr);
  dl.byte_offset = 4;
  absl::StatusOr<TensorView> v = TensorView::FromDLTensor(dl);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->dtype, DType::kBFloat16);
  EXPECT_EQ(v->strides[0], 120);
  EXPECT_EQ(v->strides[1], 24);
  EXPECT_EQ(v->strides[2], 8);
  EXPECT_EQ(v->data, reinterpret_cast<char*>(data) + 4);
}

TEST(TensorView, FromDLTensorKeepsStridesAndDevice) {
  int64_t shape[] = {1, 4, 2, 8};
  int64_t strides[] = {256, 64, 8, 1};  // e.g. q sliced out of a packed qkv.
  float fake = 0.0f;
  DLTensor dl = MakeDl(&fake, {kDLFloat, 16, 1}, shape, 4, strides);
  dl.device = {kDLCUDA, 3};
  absl::StatusOr<TensorView> v = TensorView::FromDLTensor(dl);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->dtype, DType::kFloat16);
  EXPECT_EQ(v->device, Device::Cuda(3));
  EXPECT_EQ(v->strides[1], 64);
  const DLTensor back = v->ToDLTensor();
  EXPECT_EQ(back.device.device_type, kDLCUDA);
  EXPECT_EQ(back.device.device_id, 3);
  EXPECT_EQ(back.strides[0], 256);
  EXPECT_EQ(back.dtype.code, kDLFloat);
  EXPECT_EQ(back.dtype.bits, 16);
}

TEST(TensorView, RejectsUnsupportedDtype) {
  int64_t shape[] = {4};
  double data[4];
  const DLTensor dl = MakeDl(data, {kDLFloat, 64, 1}, shape, 1, nullptr);
  const absl::Status status = TensorView::FromDLTensor(dl).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("(code 2, bits 64) is not supported"));
}

TEST(TensorView, RejectsVectorLanes) {
  int64_t shape[] = {4};
  float data[8];
  const DLTensor dl = MakeDl(data, {kDLFloat, 32, 2}, shape, 1, nullptr);
  EXPECT_THAT(std::string(TensorView::FromDLTensor(dl).status().message()),
              HasSubstr("lanes must be 1, got 2"));
}

TEST(TensorView, RejectsUnsupportedDevice) {
  int64_t shape[] = {4};
  float data[4];
  DLTensor dl = MakeDl(data, {kDLFloat, 32, 1}, shape, 1, nullptr);
  dl.device = {kDLMetal, 0};
  EXPECT_THAT(std::string(TensorView::FromDLTensor(dl).status().message()),
              HasSubstr("device_type 8 is not supported"));
}

TEST(TensorView, RejectsExcessiveRank) {
  int64_t shape[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
  float data[1];
  const DLTensor dl = MakeDl(data, {kDLFloat, 32, 1}, shape, 9, nullptr);
  EXPECT_THAT(std::string(TensorView::FromDLTensor(dl).status().message()),
              HasSubstr("ndim 9 is outside [0, 8]"));
}

}  // namespace
}  // namespace dilated
