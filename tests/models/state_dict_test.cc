// State-dict names (compared with the names PyTorch gives the reference's
// modules) and every load error: missing, unexpected and mis-shaped tensors.

#include "models/state_dict.h"

#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "models/decoder_layer.h"
#include "models/encoder_layer.h"
#include "models/fused_multihead_dilated_attention.h"
#include "models/long_net.h"
#include "models/multihead_dilated_attention.h"

namespace dilated {
namespace models {
namespace {

using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

TransformerLayerConfig SmallLayer() {
  TransformerLayerConfig config;
  config.d_model = 8;
  config.nhead = 2;
  config.segment_lengths = {4};
  config.dilation_rates = {1};
  config.dim_feedforward = 16;
  return config;
}

MultiheadConfig SmallMultihead() {
  MultiheadConfig config;
  config.embed_dim = 8;
  config.num_heads = 2;
  config.segment_lengths = {4};
  config.dilation_rates = {1};
  return config;
}

std::vector<std::string> Names(Module* module) {
  std::vector<std::string> names;
  for (const NamedParameter& p : module->Parameters()) names.push_back(p.name);
  return names;
}

// The expected lists are PyTorch's state_dict().keys() of the reference
// modules, in order.
TEST(StateDictNamesTest, EncoderLayerMatchesPyTorch) {
  auto layer = DilatedTransformerEncoderLayer::Create(SmallLayer());
  ASSERT_TRUE(layer.ok()) << layer.status();
  EXPECT_THAT(Names(layer->get()),
              ElementsAreArray({"norm1.weight",
                                "norm1.bias",
                                "self_attn.q_proj.weight",
                                "self_attn.q_proj.bias",
                                "self_attn.k_proj.weight",
                                "self_attn.k_proj.bias",
                                "self_attn.v_proj.weight",
                                "self_attn.v_proj.bias",
                                "self_attn.out_proj.weight",
                                "self_attn.out_proj.bias",
                                "self_attn.q_ln.weight",
                                "self_attn.q_ln.bias",
                                "self_attn.k_ln.weight",
                                "self_attn.k_ln.bias",
                                "norm2.weight",
                                "norm2.bias",
                                "linear1.weight",
                                "linear1.bias",
                                "norm3.weight",
                                "norm3.bias",
                                "linear2.weight",
                                "linear2.bias"}));
}

TEST(StateDictNamesTest, DecoderLayerMatchesPyTorch) {
  auto layer = DilatedTransformerDecoderLayer::Create(SmallLayer());
  ASSERT_TRUE(layer.ok()) << layer.status();
  EXPECT_THAT(Names(layer->get()),
              ElementsAreArray({"norm1.weight",
                                "norm1.bias",
                                "self_attn.q_proj.weight",
                                "self_attn.q_proj.bias",
                                "self_attn.k_proj.weight",
                                "self_attn.k_proj.bias",
                                "self_attn.v_proj.weight",
                                "self_attn.v_proj.bias",
                                "self_attn.out_proj.weight",
                                "self_attn.out_proj.bias",
                                "norm2.weight",
                                "norm2.bias",
                                "multihead_attn.q_proj.weight",
                                "multihead_attn.q_proj.bias",
                                "multihead_attn.k_proj.weight",
                                "multihead_attn.k_proj.bias",
                                "multihead_attn.v_proj.weight",
                                "multihead_attn.v_proj.bias",
                                "multihead_attn.out_proj.weight",
                                "multihead_attn.out_proj.bias",
                                "multihead_attn.q_ln.weight",
                                "multihead_attn.q_ln.bias",
                                "multihead_attn.k_ln.weight",
                                "multihead_attn.k_ln.bias",
                                "norm3.weight",
                                "norm3.bias",
                                "linear1.weight",
                                "linear1.bias",
                                "norm4.weight",
                                "norm4.bias",
                                "linear2.weight",
                                "linear2.bias"}));
}

TEST(StateDictNamesTest, FusedMultiheadMatchesPyTorch) {
  auto mha = FusedMultiheadDilatedAttention::Create(SmallMultihead());
  ASSERT_TRUE(mha.ok()) << mha.status();
  EXPECT_THAT(
      Names(mha->get()),
      ElementsAreArray({"qkv_proj.weight", "qkv_proj.bias", "out_proj.weight",
                        "out_proj.bias", "q_ln.weight", "q_ln.bias",
                        "k_ln.weight", "k_ln.bias"}));
}

TEST(StateDictNamesTest, UpstreamMultiheadMatchesPyTorch) {
  MultiheadConfig config = SmallMultihead();
  config.variant = MultiheadVariant::kUpstream;
  auto mha = MultiheadDilatedAttention::Create(config);
  ASSERT_TRUE(mha.ok()) << mha.status();
  EXPECT_THAT(Names(mha->get()),
              ElementsAreArray({"q_proj.weight", "q_proj.bias", "k_proj.weight",
                                "k_proj.bias", "v_proj.weight", "v_proj.bias",
                                "norm.weight", "norm.bias", "out_proj.weight",
                                "out_proj.bias"}));
}

TEST(StateDictNamesTest, NoBiasNoLayerNormHasOnlyProjectionWeights) {
  MultiheadConfig config = SmallMultihead();
  config.bias = false;
  config.layer_norm = false;
  auto mha = MultiheadDilatedAttention::Create(config);
  ASSERT_TRUE(mha.ok()) << mha.status();
  EXPECT_THAT(Names(mha->get()),
              ElementsAreArray({"q_proj.weight", "k_proj.weight",
                                "v_proj.weight", "out_proj.weight"}));
}

TEST(StateDictNamesTest, LongNetPrefixesLayersLikeTorchContainers) {
  LongNetConfig config;
  config.d_model = 8;
  config.nhead = 2;
  config.num_encoder_layers = 2;
  config.num_decoder_layers = 1;
  config.dim_feedforward = 16;
  config.segment_lengths = {4};
  config.dilation_rates = {1};
  auto model = LongNet::Create(config);
  ASSERT_TRUE(model.ok()) << model.status();
  const std::vector<std::string> names = Names(model->get());
  // 22 tensors per encoder layer, 32 per decoder layer.
  ASSERT_EQ(names.size(), 2 * 22 + 32);
  EXPECT_EQ(names.front(), "encoder.layers.0.norm1.weight");
  EXPECT_EQ(names[22 + 2], "encoder.layers.1.self_attn.q_proj.weight");
  EXPECT_EQ(names.back(), "decoder.layers.0.linear2.bias");
}

class LoadStateDictTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto layer = DilatedTransformerEncoderLayer::Create(SmallLayer());
    ASSERT_TRUE(layer.ok()) << layer.status();
    layer_ = std::move(*layer);
    state_ = ExportStateDict(layer_.get());
  }

  std::unique_ptr<DilatedTransformerEncoderLayer> layer_;
  ParameterMap state_;
};

TEST_F(LoadStateDictTest, LoadsEveryTensorByName) {
  ParameterMap changed = state_;
  float value = 0.0f;
  for (const std::string& name : changed.Names()) {
    for (float& v : changed.FindMutable(name)->values) v = (value += 0.5f);
  }
  ASSERT_TRUE(LoadStateDict(changed, layer_.get()).ok());
  for (const NamedParameter& p : layer_->Parameters()) {
    EXPECT_EQ(p.parameter->values, changed.Find(p.name)->values) << p.name;
  }
}

TEST_F(LoadStateDictTest, MissingTensorIsNamed) {
  state_.Erase("self_attn.k_ln.bias");
  const absl::Status status = LoadStateDict(state_, layer_.get());
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(),
              HasSubstr("missing tensor 'self_attn.k_ln.bias' (the module "
                        "expects shape [8])"));
}

TEST_F(LoadStateDictTest, UnexpectedTensorIsNamed) {
  state_.Set("self_attn.norm.weight", Parameter::Filled({8}, 1.0f));
  const absl::Status status = LoadStateDict(state_, layer_.get());
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(),
              HasSubstr("unexpected tensor 'self_attn.norm.weight' (shape "
                        "[8])"));
}

TEST_F(LoadStateDictTest, MisShapedTensorIsNamedWithBothShapes) {
  state_.Set("linear1.weight", Parameter::Filled({8, 16}, 0.0f));
  const absl::Status status = LoadStateDict(state_, layer_.get());
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(),
              HasSubstr("tensor 'linear1.weight' has shape [8, 16] but the "
                        "module expects [16, 8]"));
}

TEST_F(LoadStateDictTest, EveryProblemIsReportedAndNothingIsLoaded) {
  ParameterMap bad = state_;
  for (float& v : bad.FindMutable("norm2.weight")->values) v = 7.0f;
  bad.Erase("norm1.bias");
  bad.Set("extra", Parameter::Filled({1}, 0.0f));
  const absl::Status status = LoadStateDict(bad, layer_.get());
  EXPECT_THAT(status.message(), HasSubstr("'norm1.bias'"));
  EXPECT_THAT(status.message(), HasSubstr("'extra'"));
  for (const NamedParameter& p : layer_->Parameters()) {
    EXPECT_EQ(p.parameter->values, state_.Find(p.name)->values) << p.name;
  }
}

TEST_F(LoadStateDictTest, LongReportsListEightProblemsThenCount) {
  ParameterMap renamed;
  for (const auto& [name, tensor] : state_.tensors()) {
    renamed.Set("encoder.layers.0." + name, tensor);
  }
  // 22 missing and 22 unexpected tensors.
  const absl::Status status = LoadStateDict(renamed, layer_.get());
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("missing tensor 'norm1.weight'"));
  EXPECT_THAT(status.message(), HasSubstr("; and 36 more"));
}

TEST_F(LoadStateDictTest, IgnoredPrefixesAreNotUnexpected) {
  state_.Set("input.x", Parameter::Filled({1, 4, 8}, 0.0f));
  EXPECT_EQ(LoadStateDict(state_, layer_.get()).code(),
            absl::StatusCode::kInvalidArgument);
  LoadOptions options;
  options.ignored_prefixes = {"input."};
  EXPECT_TRUE(LoadStateDict(state_, layer_.get(), options).ok());
}

TEST(ParameterMapTest, UnknownNamesAreNotFound) {
  ParameterMap map;
  EXPECT_EQ(map.Shape("a").status().code(), absl::StatusCode::kNotFound);
  float dst = 0.0f;
  EXPECT_EQ(map.Read("a", &dst).code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace models
}  // namespace dilated
