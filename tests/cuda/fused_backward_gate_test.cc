// Which backward calls take the one-kernel backward (FusedBackwardApplies,
// kernels/cuda/fused_backward.h) once DA_FUSED_BACKWARD=1 is set: the
// dense closed form whose every group selects a multiple of 128 rows per
// segment, with a contiguous grad_q, and nothing else (packed batches, key
// padding masks, dropout, partial segments, strided grad_q, short groups).
// Host-only: the parameters are built from views of host memory.

#include <cstdint>
#include <cstdlib>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "attention/config.h"
#include "attention/options.h"
#include "attention/params_builder.h"
#include "attention/tensor.h"
#include "gtest/gtest.h"
#include "kernels/cuda/fused_backward.h"
#include "kernels/dilated_params.h"

namespace dilated {
namespace {

using kernels::gpu::FusedBackwardApplies;

// The switch is read once, at the first call: set it before any test runs.
[[maybe_unused]] const int kSwitchSet = setenv("DA_FUSED_BACKWARD", "1", 1);

constexpr int64_t kHeads = 4;
constexpr int64_t kHeadDim = 64;

struct GateCall {
  int64_t batch = 1;
  int64_t seq = 1024;
  std::vector<int64_t> segments = {256, 512};
  std::vector<int64_t> rates = {1, 2};
  double dropout = 0.0;
  bool training = false;
  bool causal = false;
  // grad_q rows `grad_q_row_gap` elements apart beyond heads * head_dim.
  int64_t grad_q_row_gap = 0;
  std::vector<int32_t> cu_seqlens = {};
  std::vector<uint8_t> key_padding_mask = {};
};

// Returns FusedBackwardApplies for the parameters of `call`, or the error
// of building them.
absl::StatusOr<bool> Applies(GateCall call) {
  const bool packed = !call.cu_seqlens.empty();
  const int64_t rows = packed ? call.cu_seqlens.back() : call.batch * call.seq;
  std::vector<uint16_t> data(rows * kHeads * kHeadDim);
  std::vector<uint16_t> grad_q_data(rows *
                                    (kHeads * kHeadDim + call.grad_q_row_gap));
  std::vector<float> lse(rows * kHeads);
  const TensorView tensor =
      packed ? TensorView::Contiguous(data.data(), DType::kFloat16,
                                      {rows, kHeads, kHeadDim})
             : TensorView::Contiguous(data.data(), DType::kFloat16,
                                      {call.batch, call.seq, kHeads, kHeadDim});
  TensorView grad_q = tensor;
  grad_q.data = grad_q_data.data();
  const int64_t row_stride = kHeads * kHeadDim + call.grad_q_row_gap;
  grad_q.strides[grad_q.rank - 3] = row_stride;
  if (!packed) grad_q.strides[0] = call.seq * row_stride;
  const TensorView lse_view =
      packed
          ? TensorView::Contiguous(lse.data(), DType::kFloat32, {kHeads, rows})
          : TensorView::Contiguous(lse.data(), DType::kFloat32,
                                   {call.batch, kHeads, call.seq});
  AttentionConfig config;
  config.segment_lengths = call.segments;
  config.dilation_rates = call.rates;
  config.dropout = call.dropout;
  ForwardOptions options;
  options.is_causal = call.causal;
  options.training = call.training;
  if (packed) {
    options.cu_seqlens =
        TensorView::Contiguous(call.cu_seqlens.data(), DType::kInt32,
                               {static_cast<int64_t>(call.cu_seqlens.size())});
  }
  if (!call.key_padding_mask.empty()) {
    options.key_padding_mask = TensorView::Contiguous(
        call.key_padding_mask.data(), DType::kBool, {call.batch, call.seq});
  }
  absl::StatusOr<kernels::BackwardParams> params =
      MakeBackwardParams(config, tensor, tensor, tensor, tensor, lse_view,
                         tensor, grad_q, tensor, tensor, options);
  if (!params.ok()) return params.status();
  return FusedBackwardApplies(*params);
}

TEST(FusedBackwardGateTest, WholeSegmentsOfRowMultiplesApply) {
  EXPECT_EQ(Applies({}).value(), true);
  GateCall causal_batch;
  causal_batch.batch = 2;
  causal_batch.causal = true;
  EXPECT_EQ(Applies(causal_batch).value(), true);
  GateCall one_group;
  one_group.seq = 512;
  one_group.segments = {128};
  one_group.rates = {1};
  EXPECT_EQ(Applies(one_group).value(), true);
}

TEST(FusedBackwardGateTest, GroupWithFewerRowsRefused) {
  GateCall call;
  call.segments = {256, 512};
  call.rates = {1, 8};  // 64 rows per segment in the second group
  EXPECT_EQ(Applies(call).value(), false);
}

TEST(FusedBackwardGateTest, PartialSegmentRefused) {
  GateCall call;
  call.seq = 1280;  // 1280 = 2.5 segments of 512
  EXPECT_EQ(Applies(call).value(), false);
}

TEST(FusedBackwardGateTest, StridedGradQRefused) {
  GateCall call;
  call.grad_q_row_gap = 8;
  EXPECT_EQ(Applies(call).value(), false);
}

TEST(FusedBackwardGateTest, PackedBatchRefused) {
  GateCall call;
  call.cu_seqlens = {0, 512, 1024};
  EXPECT_EQ(Applies(call).value(), false);
}

TEST(FusedBackwardGateTest, KeyPaddingMaskRefused) {
  GateCall call;
  call.key_padding_mask.assign(call.seq, 1);
  EXPECT_EQ(Applies(call).value(), false);
}

TEST(FusedBackwardGateTest, DropoutRefused) {
  GateCall call;
  call.dropout = 0.1;
  call.training = true;
  EXPECT_EQ(Applies(call).value(), false);
}

}  // namespace
}  // namespace dilated
