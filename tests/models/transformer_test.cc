// The encoder and decoder layers and LongNet: configuration and input
// validation (every shape error names the tensor), and the structure of the
// forward pass where it can be checked without reference values.

#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "models/decoder_layer.h"
#include "models/encoder_layer.h"
#include "models/long_net.h"
#include "models/state_dict.h"
#include "tests/models/model_test_util.h"
#include "tests/testing/compare.h"

namespace dilated {
namespace models {
namespace {

using ::dilated::models::testing::RandomTensor;
using ::dilated::models::testing::ToDoubles;
using ::testing::HasSubstr;

TransformerLayerConfig SmallLayer() {
  TransformerLayerConfig config;
  config.d_model = 16;
  config.nhead = 4;
  config.segment_lengths = {4, 8};
  config.dilation_rates = {1, 2};
  config.dim_feedforward = 24;
  return config;
}

LongNetConfig SmallLongNet() {
  LongNetConfig config;
  config.d_model = 16;
  config.nhead = 4;
  config.num_encoder_layers = 1;
  config.num_decoder_layers = 1;
  config.dim_feedforward = 24;
  config.segment_lengths = {4, 8};
  config.dilation_rates = {1, 2};
  return config;
}

void ExpectInvalid(const absl::Status& status, const std::string& message) {
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr(message));
}

TEST(TransformerConfigTest, FeedForwardWidthMustBePositive) {
  TransformerLayerConfig config = SmallLayer();
  config.dim_feedforward = 0;
  ExpectInvalid(DilatedTransformerEncoderLayer::Create(config).status(),
                "dim_feedforward must be positive, got 0");
  ExpectInvalid(DilatedTransformerDecoderLayer::Create(config).status(),
                "dim_feedforward must be positive, got 0");
}

TEST(TransformerConfigTest, ModelWidthAndHeadsAreChecked) {
  TransformerLayerConfig config = SmallLayer();
  config.d_model = -1;
  ExpectInvalid(DilatedTransformerEncoderLayer::Create(config).status(),
                "d_model must be positive, got -1");
  config = SmallLayer();
  config.nhead = 0;
  ExpectInvalid(DilatedTransformerEncoderLayer::Create(config).status(),
                "nhead must be positive, got 0");
  config = SmallLayer();
  config.nhead = 5;
  ExpectInvalid(DilatedTransformerDecoderLayer::Create(config).status(),
                "embed_dim (16) must be divisible by num_heads (5)");
}

TEST(LongNetConfigTest, LayerCountsMustBePositive) {
  LongNetConfig config = SmallLongNet();
  config.num_encoder_layers = 0;
  ExpectInvalid(LongNet::Create(config).status(),
                "num_encoder_layers must be >= 1, got 0");
  config = SmallLongNet();
  config.num_decoder_layers = -3;
  ExpectInvalid(LongNet::Create(config).status(),
                "num_decoder_layers must be >= 1, got -3");
}

TEST(LongNetConfigTest, ActivationAndGroupsAreChecked) {
  LongNetConfig config = SmallLongNet();
  config.nhead = 1;
  config.d_model = 8;
  ExpectInvalid(LongNet::Create(config).status(),
                "num_heads (1) must be >= num_groups (2");
}

TEST(EncoderLayerInputTest, ShapeErrorsNameSrc) {
  auto layer = DilatedTransformerEncoderLayer::Create(SmallLayer());
  ASSERT_TRUE(layer.ok()) << layer.status();
  ExpectInvalid(
      (*layer)
          ->Forward(RandomTensor(DType::kFloat32, {8, 16}, 1), false)
          .status(),
      "src must be [batch, seq_len, d_model] with d_model = 16 and positive "
      "batch and seq_len, got [8, 16]");
  ExpectInvalid(
      (*layer)
          ->Forward(RandomTensor(DType::kFloat32, {1, 8, 12}, 2), false)
          .status(),
      "got [1, 8, 12]");
  ExpectInvalid(
      (*layer)
          ->Forward(RandomTensor(DType::kFloat32, {1, 4, 16}, 3), false)
          .status(),
      "sequence length 4 of src is not divisible by segment_lengths[1] = 8");
}

TEST(DecoderLayerInputTest, ShapeErrorsNameTgtOrMemory) {
  auto layer = DilatedTransformerDecoderLayer::Create(SmallLayer());
  ASSERT_TRUE(layer.ok()) << layer.status();
  const Tensor tgt = RandomTensor(DType::kFloat32, {2, 8, 16}, 4);
  ExpectInvalid((*layer)
                    ->Forward(RandomTensor(DType::kFloat32, {2, 12, 16}, 5),
                              tgt, false, false)
                    .status(),
                "sequence length 12 of tgt is not divisible by "
                "segment_lengths[1] = 8");
  ExpectInvalid(
      (*layer)
          ->Forward(tgt, RandomTensor(DType::kFloat32, {2, 16, 16}, 6), false,
                    false)
          .status(),
      "memory must have the shape and dtype of tgt [2, 8, 16] float32, got "
      "[2, 16, 16] float32");
  ExpectInvalid(
      (*layer)
          ->Forward(tgt, RandomTensor(DType::kBFloat16, {2, 8, 16}, 7), false,
                    false)
          .status(),
      "got [2, 8, 16] bfloat16");
}

TEST(LongNetInputTest, ShapeErrorsNameX) {
  auto model = LongNet::Create(SmallLongNet());
  ASSERT_TRUE(model.ok()) << model.status();
  ExpectInvalid(
      (*model)->Forward(RandomTensor(DType::kFloat32, {1, 8, 8}, 8)).status(),
      "x must be [batch, seq_len, d_model] with d_model = 16");
  ExpectInvalid(
      (*model)->Forward(RandomTensor(DType::kFloat32, {1, 20, 16}, 9)).status(),
      "sequence length 20 of x is not divisible by segment_lengths[1] = 8");
  ExpectInvalid(
      (*model)->Forward(Tensor::Zeros(DType::kFloat32, {0, 8, 16})).status(),
      "got [0, 8, 16]");
}

// LongNet with one layer of each kind is, by definition, the decoder layer
// applied to x with the encoder layer's output as memory.
TEST(LongNetStructureTest, DecoderRunsOnTheInputWithEncoderMemory) {
  LongNetConfig config = SmallLongNet();
  auto model = LongNet::Create(config);
  ASSERT_TRUE(model.ok()) << model.status();
  auto encoder =
      DilatedTransformerEncoderLayer::Create(config.LayerConfig(true));
  auto decoder =
      DilatedTransformerDecoderLayer::Create(config.LayerConfig(false));
  ASSERT_TRUE(encoder.ok() && decoder.ok());
  const ParameterMap state = ExportStateDict(model->get());
  ParameterMap encoder_state, decoder_state;
  for (const auto& [name, tensor] : state.tensors()) {
    if (name.rfind("encoder.layers.0.", 0) == 0) {
      encoder_state.Set(name.substr(17), tensor);
    } else {
      decoder_state.Set(name.substr(17), tensor);
    }
  }
  ASSERT_TRUE(LoadStateDict(encoder_state, encoder->get()).ok());
  ASSERT_TRUE(LoadStateDict(decoder_state, decoder->get()).ok());
  const Tensor x = RandomTensor(DType::kFloat32, {2, 8, 16}, 10);
  for (bool causal : {true, false}) {
    auto memory = (*encoder)->Forward(x, causal);
    ASSERT_TRUE(memory.ok());
    auto expected = (*decoder)->Forward(x, *memory, causal, causal);
    auto actual = (*model)->Forward(x, causal);
    ASSERT_TRUE(expected.ok() && actual.ok());
    // The same operations in the same order: identical.
    EXPECT_EQ(ToDoubles(*actual), ToDoubles(*expected));
  }
}

}  // namespace
}  // namespace models
}  // namespace dilated
