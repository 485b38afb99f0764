// Seeded MAGNETO initialisation of fresh models: the gain formulas, the
// weight statistics of every projection, and determinism.

#include "models/init.h"

#include <cmath>
#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "models/encoder_layer.h"
#include "models/fused_multihead_dilated_attention.h"
#include "models/long_net.h"
#include "models/multihead_dilated_attention.h"
#include "models/state_dict.h"

namespace dilated {
namespace models {
namespace {

struct Moments {
  double mean;
  double std_dev;
};

Moments MomentsOf(const float* data, int64_t count) {
  double sum = 0.0, squares = 0.0;
  for (int64_t i = 0; i < count; ++i) sum += data[i];
  const double mean = sum / count;
  for (int64_t i = 0; i < count; ++i) {
    squares += (data[i] - mean) * (data[i] - mean);
  }
  return {mean, std::sqrt(squares / count)};
}

// Expects `count` samples to be N(0, expected_std^2): with >= 16384 samples
// the sample std is within 2% and the mean within 5 standard errors.
void ExpectNormal(const float* data, int64_t count, double expected_std,
                  const std::string& what) {
  const Moments m = MomentsOf(data, count);
  EXPECT_NEAR(m.std_dev, expected_std, 0.02 * expected_std) << what;
  EXPECT_NEAR(m.mean, 0.0, 5.0 * expected_std / std::sqrt(count)) << what;
}

void ExpectConstant(const Parameter& p, float value, const std::string& what) {
  for (float v : p.values) ASSERT_EQ(v, value) << what;
}

// Values from docs/REFERENCE.md §8 (LongNet gamma_init for 12/12, 1/1 and 2/2
// layers).
TEST(GammaInitTest, MatchesTheReferenceFormulas) {
  EXPECT_NEAR(EncoderGammaInit(12, 12), 1.9483853, 1e-7);
  EXPECT_NEAR(DecoderGammaInit(12), 1.8930185, 1e-7);
  EXPECT_NEAR(EncoderGammaInit(1, 1), 0.5038188, 1e-7);
  EXPECT_NEAR(DecoderGammaInit(1), 1.0481471, 1e-7);
  EXPECT_NEAR(EncoderGammaInit(2, 2), 0.9099278, 1e-7);
  EXPECT_NEAR(DecoderGammaInit(2), 1.3385662, 1e-7);
}

TEST(RngTest, NormalSamplesHaveUnitVariance) {
  Rng rng(7);
  std::vector<float> samples(1 << 16);
  for (float& s : samples) s = static_cast<float>(rng.Normal());
  ExpectNormal(samples.data(), samples.size(), 1.0, "Rng::Normal");
}

TEST(RngTest, SameSeedSameSequenceOtherSeedOtherSequence) {
  Rng a(3), b(3), c(4);
  for (int i = 0; i < 5; ++i) {
    const double x = a.Normal();
    EXPECT_EQ(x, b.Normal());
    EXPECT_NE(x, c.Normal());
  }
}

MultiheadConfig WideMultihead() {
  MultiheadConfig config;
  config.embed_dim = 256;
  config.num_heads = 4;
  config.segment_lengths = {4};
  config.dilation_rates = {1};
  config.gamma_init = 1.7;
  return config;
}

TEST(MultiheadInitTest, MagnetoGainsOnValueAndOutputOnly) {
  auto mha = MultiheadDilatedAttention::Create(WideMultihead());
  ASSERT_TRUE(mha.ok()) << mha.status();
  ParameterMap state = ExportStateDict(mha->get());
  const double base = std::sqrt(2.0 / (256 + 256));
  for (const auto& [name, gain] :
       {std::pair<std::string, double>{"q_proj", 1.0},
        {"k_proj", 1.0},
        {"v_proj", 1.7},
        {"out_proj", 1.7}}) {
    const Parameter* w = state.Find(name + ".weight");
    ExpectNormal(w->values.data(), w->NumElements(), gain * base, name);
    ExpectConstant(*state.Find(name + ".bias"), 0.0f, name + ".bias");
  }
  ExpectConstant(*state.Find("q_ln.weight"), 1.0f, "q_ln.weight");
  ExpectConstant(*state.Find("k_ln.bias"), 0.0f, "k_ln.bias");
}

TEST(MultiheadInitTest, FusedSlicesHaveTheirOwnFans) {
  auto mha = FusedMultiheadDilatedAttention::Create(WideMultihead());
  ASSERT_TRUE(mha.ok()) << mha.status();
  ParameterMap state = ExportStateDict(mha->get());
  const Parameter* qkv = state.Find("qkv_proj.weight");
  const int64_t slice = 256 * 256;
  // Each E x E slice: std = gain * sqrt(2 / (E + E)).
  const double base = std::sqrt(2.0 / 512);
  ExpectNormal(qkv->values.data(), slice, base, "q rows");
  ExpectNormal(qkv->values.data() + slice, slice, base, "k rows");
  ExpectNormal(qkv->values.data() + 2 * slice, slice, 1.7 * base, "v rows");
  const Parameter* out = state.Find("out_proj.weight");
  ExpectNormal(out->values.data(), slice, 1.7 * base, "out_proj");
  ExpectConstant(*state.Find("qkv_proj.bias"), 0.0f, "qkv_proj.bias");
}

TEST(MultiheadInitTest, SeedDeterminesTheWeights) {
  MultiheadConfig config = WideMultihead();
  config.seed = 11;
  auto a = MultiheadDilatedAttention::Create(config);
  auto b = MultiheadDilatedAttention::Create(config);
  config.seed = 12;
  auto c = MultiheadDilatedAttention::Create(config);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  const ParameterMap sa = ExportStateDict(a->get());
  const ParameterMap sb = ExportStateDict(b->get());
  const ParameterMap sc = ExportStateDict(c->get());
  EXPECT_EQ(sa.Find("q_proj.weight")->values, sb.Find("q_proj.weight")->values);
  EXPECT_NE(sa.Find("q_proj.weight")->values, sc.Find("q_proj.weight")->values);
}

TEST(EncoderLayerInitTest, FeedForwardUsesTheLayerGain) {
  TransformerLayerConfig config;
  config.d_model = 128;
  config.nhead = 2;
  config.segment_lengths = {4};
  config.dilation_rates = {1};
  config.dim_feedforward = 384;
  config.gamma_init = 0.6;
  auto layer = DilatedTransformerEncoderLayer::Create(config);
  ASSERT_TRUE(layer.ok()) << layer.status();
  ParameterMap state = ExportStateDict(layer->get());
  const double std_dev = 0.6 * std::sqrt(2.0 / (128 + 384));
  for (const std::string name : {"linear1.weight", "linear2.weight"}) {
    const Parameter* w = state.Find(name);
    ExpectNormal(w->values.data(), w->NumElements(), std_dev, name);
  }
  ExpectConstant(*state.Find("linear1.bias"), 0.0f, "linear1.bias");
  ExpectConstant(*state.Find("norm3.weight"), 1.0f, "norm3.weight");
}

TEST(LongNetInitTest, EncoderAndDecoderGainsAndDistinctLayers) {
  LongNetConfig config;
  config.d_model = 128;
  config.nhead = 2;
  config.num_encoder_layers = 2;
  config.num_decoder_layers = 2;
  config.dim_feedforward = 128;
  config.segment_lengths = {4};
  config.dilation_rates = {1};
  auto model = LongNet::Create(config);
  ASSERT_TRUE(model.ok()) << model.status();
  ParameterMap state = ExportStateDict(model->get());
  const double base = std::sqrt(2.0 / 256);
  const Parameter* enc_v =
      state.Find("encoder.layers.1.self_attn.v_proj.weight");
  ExpectNormal(enc_v->values.data(), enc_v->NumElements(),
               EncoderGammaInit(2, 2) * base, "encoder v_proj");
  const Parameter* dec_out =
      state.Find("decoder.layers.0.multihead_attn.out_proj.weight");
  ExpectNormal(dec_out->values.data(), dec_out->NumElements(),
               DecoderGammaInit(2) * base, "decoder out_proj");
  const Parameter* dec_q =
      state.Find("decoder.layers.1.self_attn.q_proj.weight");
  ExpectNormal(dec_q->values.data(), dec_q->NumElements(), base,
               "decoder q_proj");
  // Layers are initialised one by one, not copied
  // (docs/REFERENCE.md §15 item 14).
  EXPECT_NE(state.Find("encoder.layers.0.linear1.weight")->values,
            state.Find("encoder.layers.1.linear1.weight")->values);
}

}  // namespace
}  // namespace models
}  // namespace dilated
