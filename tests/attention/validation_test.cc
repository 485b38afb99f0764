// Every validation rule: the status code and the message that names the field
// and the value.

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "attention/registry.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dilated {
namespace {

using ::testing::HasSubstr;

absl::Status CreateWith(const AttentionConfig& config) {
  return CreateAttention("standard", config).status();
}

void ExpectInvalid(const absl::Status& status, const std::string& message) {
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr(message));
}

TEST(ConfigValidation, DefaultsAreValid) {
  EXPECT_TRUE(AttentionConfig().Validate().ok());
}

TEST(ConfigValidation, EmptySegmentLengths) {
  AttentionConfig config;
  config.segment_lengths = {};
  ExpectInvalid(CreateWith(config), "segment_lengths cannot be empty");
}

TEST(ConfigValidation, EmptyDilationRates) {
  AttentionConfig config;
  config.dilation_rates = {};
  ExpectInvalid(CreateWith(config), "dilation_rates cannot be empty");
}

TEST(ConfigValidation, LengthMismatch) {
  AttentionConfig config;
  config.segment_lengths = {8, 16};
  config.dilation_rates = {1, 2, 4};
  ExpectInvalid(CreateWith(config),
                "segment_lengths and dilation_rates must have the same "
                "length: 2 != 3");
}

TEST(ConfigValidation, NonPositiveSegment) {
  AttentionConfig config;
  config.segment_lengths = {8, 0, 16};
  ExpectInvalid(CreateWith(config),
                "segment_lengths[1] must be positive, got 0");
}

TEST(ConfigValidation, NegativeRate) {
  AttentionConfig config;
  config.dilation_rates = {1, 2, -4};
  ExpectInvalid(CreateWith(config),
                "dilation_rates[2] must be positive, got -4");
}

TEST(ConfigValidation, DropoutOutsideRange) {
  AttentionConfig config;
  config.dropout = 1.0;
  ExpectInvalid(CreateWith(config), "dropout must be in [0, 1), got 1");
  config.dropout = -0.5;
  ExpectInvalid(CreateWith(config), "dropout must be in [0, 1), got -0.5");
}

TEST(ConfigValidation, NonFiniteScale) {
  AttentionConfig config;
  config.softmax_scale = 1.0 / 0.0;
  ExpectInvalid(CreateWith(config), "softmax_scale must be finite, got inf");
}

TEST(ConfigValidation, TooManyGroups) {
  AttentionConfig config;
  config.segment_lengths.assign(40, 8);
  config.dilation_rates.assign(40, 1);
  ExpectInvalid(CreateWith(config), "segment_lengths has 40 entries");
}

TEST(Factory, UnknownNameListsRegisteredNames) {
  absl::StatusOr<std::unique_ptr<Attention>> attention =
      CreateAttention("does_not_exist", AttentionConfig());
  EXPECT_EQ(attention.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(attention.status().message()),
              HasSubstr("'does_not_exist'"));
  EXPECT_THAT(std::string(attention.status().message()), HasSubstr("standard"));
}

// Float32 [b, n, h, d] tensors over one shared buffer for the shape checks.
class TensorValidation : public ::testing::Test {
 protected:
  void SetUp() override {
    AttentionConfig config;
    config.segment_lengths = {4, 8};
    config.dilation_rates = {1, 2};
    absl::StatusOr<std::unique_ptr<Attention>> created =
        CreateAttention("standard", config);
    ASSERT_TRUE(created.ok()) << created.status();
    attention_ = std::move(*created);
    buffer_.assign(4096, 0.0f);
    q_ = Make({1, 16, 2, 8});
    k_ = q_;
    v_ = q_;
    out_ = q_;
  }

  TensorView Make(std::initializer_list<int64_t> shape) {
    return TensorView::Contiguous(buffer_.data(), DType::kFloat32, shape);
  }

  absl::Status Run() { return attention_->Forward(q_, k_, v_, out_); }

  std::unique_ptr<Attention> attention_;
  std::vector<float> buffer_;
  TensorView q_, k_, v_, out_;
};

TEST_F(TensorValidation, ValidInputsRun) { EXPECT_TRUE(Run().ok()); }

TEST_F(TensorValidation, NullData) {
  v_.data = nullptr;
  ExpectInvalid(Run(), "v.data is null");
}

TEST_F(TensorValidation, WrongRank) {
  q_ = Make({16, 2, 8});
  ExpectInvalid(Run(),
                "q must be a 4-D tensor [batch, seq, heads, head_dim], "
                "got 3-D with shape [16, 2, 8]");
}

TEST_F(TensorValidation, ZeroExtent) {
  q_ = Make({0, 16, 2, 8});
  ExpectInvalid(Run(), "q.shape[0] must be positive, got 0");
}

TEST_F(TensorValidation, NonContiguousLastAxis) {
  k_.strides[3] = 2;
  ExpectInvalid(Run(), "k.strides[3] must be 1 (head_dim contiguous), got 2");
}

TEST_F(TensorValidation, ShapeMismatch) {
  v_ = Make({1, 16, 2, 16});
  ExpectInvalid(Run(),
                "v.shape [1, 16, 2, 16] does not match q.shape "
                "[1, 16, 2, 8] at dimension 3");
}

TEST_F(TensorValidation, OutShapeMismatch) {
  out_ = Make({2, 16, 2, 8});
  ExpectInvalid(Run(), "out.shape [2, 16, 2, 8] does not match q.shape");
}

TEST_F(TensorValidation, DtypeMismatch) {
  k_.dtype = DType::kFloat16;
  ExpectInvalid(Run(), "k.dtype is float16 but q.dtype is float32");
}

TEST_F(TensorValidation, DeviceMismatch) {
  out_.device = Device::Cuda(1);
  ExpectInvalid(Run(), "out is on cuda:1 but q is on cpu");
}

TEST_F(TensorValidation, SequenceNotDivisibleBySegmentIsAPartialSegment) {
  // 12 = 8 + a partial segment of 4: accepted (the reference rejects it).
  AttentionConfig config;
  config.segment_lengths = {8, 4};
  config.dilation_rates = {1, 2};
  std::unique_ptr<Attention> attention = *CreateAttention("standard", config);
  const TensorView t = Make({1, 12, 2, 8});
  EXPECT_TRUE(attention->Forward(t, t, t, t).ok());
}

TEST_F(TensorValidation, FewerHeadsThanGroups) {
  const TensorView t = Make({1, 16, 1, 8});
  ExpectInvalid(attention_->Forward(t, t, t, t),
                "num_heads 1 (q.shape[2]) must be >= the number of groups 2 "
                "(len(segment_lengths))");
}

TEST_F(TensorValidation, LseShape) {
  TensorView lse = Make({1, 16, 2});
  ExpectInvalid(attention_->Forward(q_, k_, v_, out_, {}, &lse),
                "lse must have shape [batch, heads, seq] = [1, 2, 16], got "
                "[1, 16, 2]");
}

TEST_F(TensorValidation, LseDtype) {
  TensorView lse = Make({1, 2, 16});
  lse.dtype = DType::kBFloat16;
  ExpectInvalid(attention_->Forward(q_, k_, v_, out_, {}, &lse),
                "lse.dtype must be float32, got bfloat16");
}

TEST_F(TensorValidation, GradientShape) {
  const TensorView lse = Make({1, 2, 16});
  const TensorView bad = Make({1, 16, 4, 8});
  ExpectInvalid(attention_->Backward(q_, k_, v_, out_, lse, q_, q_, bad, q_),
                "grad_k.shape [1, 16, 4, 8] does not match q.shape");
}

TEST_F(TensorValidation, StreamWithCpuTensors) {
  int fake_stream = 0;
  ForwardOptions options;
  options.stream = &fake_stream;
  ExpectInvalid(attention_->Forward(q_, k_, v_, out_, options),
                "options.stream must be null for CPU tensors");
}

TEST_F(TensorValidation, TrainingDropoutIsRefusedNotIgnored) {
  AttentionConfig config;
  config.segment_lengths = {4, 8};
  config.dilation_rates = {1, 2};
  config.dropout = 0.1;
  // "longnet" does not apply dropout ("standard" and "improved" do).
  std::unique_ptr<Attention> attention = *CreateAttention("longnet", config);
  ForwardOptions options;
  options.training = true;
  const absl::Status status = attention->Forward(q_, k_, v_, out_, options);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnimplemented) << status;
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("dropout 0.1 with training=true is not implemented by "
                        "'longnet'"));
  options.training = false;
  EXPECT_TRUE(attention->Forward(q_, k_, v_, out_, options).ok());
}

// Packed [total, heads, head_dim] tensors and their cu_seqlens.
class PackedValidation : public TensorValidation {
 protected:
  void SetUp() override {
    TensorValidation::SetUp();
    q_ = Make({16, 2, 8});
    k_ = v_ = out_ = q_;
    offsets_ = {0, 5, 16};
    options_.cu_seqlens = Offsets();
  }

  TensorView Offsets() {
    return TensorView::Contiguous(offsets_.data(), DType::kInt32,
                                  {static_cast<int64_t>(offsets_.size())});
  }

  absl::Status RunPacked() {
    return attention_->Forward(q_, k_, v_, out_, options_);
  }

  std::vector<int32_t> offsets_;
  ForwardOptions options_;
};

TEST_F(PackedValidation, ValidInputsRun) { EXPECT_TRUE(RunPacked().ok()); }

TEST_F(PackedValidation, TensorsMustBeThreeDimensional) {
  q_ = Make({1, 16, 2, 8});
  ExpectInvalid(RunPacked(),
                "q must be a 3-D tensor [total, heads, head_dim] (cu_seqlens "
                "given), got 4-D");
}

TEST_F(PackedValidation, FirstOffsetMustBeZero) {
  offsets_ = {1, 5, 16};
  ExpectInvalid(RunPacked(), "cu_seqlens[0] must be 0, got 1");
}

TEST_F(PackedValidation, OffsetsMustNotDecrease) {
  offsets_ = {0, 9, 5, 16};
  options_.cu_seqlens = Offsets();
  ExpectInvalid(RunPacked(),
                "cu_seqlens must be non-decreasing, got cu_seqlens[1] = 9 > "
                "cu_seqlens[2] = 5");
}

TEST_F(PackedValidation, LastOffsetMustBeTheTotal) {
  offsets_ = {0, 5, 15};
  ExpectInvalid(RunPacked(),
                "cu_seqlens[2] = 15 must equal the total rows q.shape[0] = 16");
}

TEST_F(PackedValidation, OffsetsMustBeInt32) {
  options_.cu_seqlens->dtype = DType::kFloat32;
  ExpectInvalid(RunPacked(), "cu_seqlens.dtype must be int32, got float32");
}

TEST_F(PackedValidation, OffsetsMustBeOneDimensional) {
  options_.cu_seqlens =
      TensorView::Contiguous(offsets_.data(), DType::kInt32, {1, 3});
  ExpectInvalid(RunPacked(),
                "cu_seqlens must be a 1-D tensor [batch + 1] with batch >= 1, "
                "got shape [1, 3]");
  options_.cu_seqlens =
      TensorView::Contiguous(offsets_.data(), DType::kInt32, {1});
  ExpectInvalid(RunPacked(), "got shape [1]");
}

TEST_F(PackedValidation, LseIsHeadsByTotal) {
  TensorView lse = Make({1, 2, 16});
  ExpectInvalid(attention_->Forward(q_, k_, v_, out_, options_, &lse),
                "lse must have shape [heads, total] = [2, 16] for packed "
                "input, got [1, 2, 16]");
  lse = Make({2, 16});
  EXPECT_TRUE(attention_->Forward(q_, k_, v_, out_, options_, &lse).ok());
}

TEST_F(PackedValidation, NotTogetherWithAKeyPaddingMask) {
  std::vector<uint8_t> mask(16, 0);
  options_.key_padding_mask =
      TensorView::Contiguous(mask.data(), DType::kBool, {1, 16});
  ExpectInvalid(RunPacked(), "cu_seqlens and key_padding_mask were both given");
}

class MaskValidation : public TensorValidation {
 protected:
  absl::Status RunMasked(TensorView mask) {
    ForwardOptions options;
    options.key_padding_mask = mask;
    return attention_->Forward(q_, k_, v_, out_, options);
  }

  std::vector<uint8_t> mask_ = std::vector<uint8_t>(64, 0);
};

TEST_F(MaskValidation, ValidMaskRuns) {
  EXPECT_TRUE(
      RunMasked(TensorView::Contiguous(mask_.data(), DType::kBool, {1, 16}))
          .ok());
}

TEST_F(MaskValidation, ShapeMustBeBatchBySeq) {
  ExpectInvalid(
      RunMasked(TensorView::Contiguous(mask_.data(), DType::kBool, {16, 1})),
      "key_padding_mask must have shape [batch, seq] = [1, 16], got [16, 1]");
}

TEST_F(MaskValidation, DtypeMustBeBool) {
  ExpectInvalid(
      RunMasked(TensorView::Contiguous(mask_.data(), DType::kInt32, {1, 16})),
      "key_padding_mask.dtype must be bool, got int32");
}

TEST_F(MaskValidation, DeviceMustBeTheTensors) {
  ExpectInvalid(RunMasked(TensorView::Contiguous(mask_.data(), DType::kBool,
                                                 {1, 16}, Device::Cuda(0))),
                "key_padding_mask is on cuda:0 but q is on cpu");
}

TEST(DeviceAvailability, CudaTensorsWithoutCudaBackend) {
  AttentionConfig config;
  config.segment_lengths = {4};
  config.dilation_rates = {1};
  std::unique_ptr<Attention> attention = *CreateAttention("standard", config);
  float fake = 0.0f;  // Never dereferenced: the call must fail first.
  const TensorView t = TensorView::Contiguous(&fake, DType::kFloat16,
                                              {1, 4, 1, 8}, Device::Cuda(0));
  const absl::Status status = attention->Forward(t, t, t, t);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("'standard' has no backend for cuda:0 tensors"));
}

}  // namespace
}  // namespace dilated
