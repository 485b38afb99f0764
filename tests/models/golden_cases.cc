#include "tests/models/golden_cases.h"

#include <cstdlib>

#include "factory/status_macros.h"
#include "models/registry.h"
#include "models/safetensors_io.h"

namespace dilated {
namespace models {
namespace testing {

std::string GoldenDir() {
  const char* dir = std::getenv("MODEL_GOLDEN_DIR");
  return dir != nullptr ? std::string(dir) : std::string("tests/data/models/");
}

// Every file of tests/data/models/ must appear here (checked below). The
// settings are those of tools/make_model_goldens.py: d_model 32, 4 heads,
// dim_feedforward 48.
std::vector<GoldenCase> Cases() {
  std::vector<GoldenCase> cases;
  cases.push_back({"multihead_fork", Kind::kMultihead, false});
  cases.push_back({"multihead_fork_cross_causal", Kind::kMultihead, true});
  GoldenCase plain{"multihead_fork_plain", Kind::kMultihead, true};
  plain.bias = false;
  plain.layer_norm = false;
  cases.push_back(plain);
  GoldenCase upstream{"multihead_upstream", Kind::kMultihead, true};
  upstream.variant = MultiheadVariant::kUpstream;
  cases.push_back(upstream);
  GoldenCase sums{"multihead_upstream_group_sums", Kind::kMultihead, false};
  sums.variant = MultiheadVariant::kUpstream;
  sums.normalize_group_sums = true;
  cases.push_back(sums);
  cases.push_back({"multihead_improved", Kind::kMultiheadImproved, true});
  cases.push_back(
      {"multihead_improved_cross", Kind::kMultiheadImproved, false});
  cases.push_back({"encoder_layer_relu_causal", Kind::kEncoder, true});
  GoldenCase gelu{"encoder_layer_gelu", Kind::kEncoder, false};
  gelu.activation = Activation::kGelu;
  cases.push_back(gelu);
  cases.push_back({"decoder_layer_causal", Kind::kDecoder, true});
  GoldenCase longnet{"longnet_causal", Kind::kLongNet, true};
  longnet.num_encoder_layers = 2;
  longnet.num_decoder_layers = 2;
  cases.push_back(longnet);
  GoldenCase small{"longnet_1x1_noncausal", Kind::kLongNet, false};
  small.num_encoder_layers = 1;
  small.num_decoder_layers = 1;
  small.segment_lengths = {8, 16};
  small.dilation_rates = {1, 2};
  cases.push_back(small);
  cases.push_back({"encoder_layer_bf16", Kind::kEncoder, true, kBFloat16});
  cases.push_back({"multihead_f16", Kind::kMultihead, true, kFloat16});
  return cases;
}

MultiheadConfig MultiheadFor(const GoldenCase& c, const std::string& core) {
  MultiheadConfig config;
  config.embed_dim = 32;
  config.num_heads = 4;
  config.segment_lengths = c.segment_lengths;
  config.dilation_rates = c.dilation_rates;
  config.bias = c.bias;
  config.layer_norm = c.layer_norm;
  config.variant = c.variant;
  config.normalize_group_sums = c.normalize_group_sums;
  config.attention_core = core;
  return config;
}

TransformerLayerConfig LayerFor(const GoldenCase& c, const std::string& core) {
  TransformerLayerConfig config;
  config.d_model = 32;
  config.nhead = 4;
  config.segment_lengths = c.segment_lengths;
  config.dilation_rates = c.dilation_rates;
  config.dim_feedforward = 48;
  config.activation = c.activation;
  config.attention_core = core;
  return config;
}

LongNetConfig LongNetFor(const GoldenCase& c, const std::string& core) {
  LongNetConfig config;
  config.d_model = 32;
  config.nhead = 4;
  config.num_encoder_layers = c.num_encoder_layers;
  config.num_decoder_layers = c.num_decoder_layers;
  config.dim_feedforward = 48;
  config.segment_lengths = c.segment_lengths;
  config.dilation_rates = c.dilation_rates;
  config.attention_core = core;
  return config;
}

absl::StatusOr<CaseModule> LoadCaseModule(const GoldenCase& c,
                                          const std::string& core,
                                          const std::string& path) {
  LoadOptions options;
  options.ignored_prefixes = {"input."};
  CaseModule module;
  switch (c.kind) {
    case Kind::kMultihead:
    case Kind::kMultiheadImproved: {
      DA_ASSIGN_OR_RETURN(module.multihead,
                          CreateMultiheadAttention(c.kind == Kind::kMultihead
                                                       ? "multihead_standard"
                                                       : "multihead_improved",
                                                   MultiheadFor(c, core)));
      DA_RETURN_IF_ERROR(
          LoadSafetensorsStateDict(path, module.multihead.get(), options));
      return module;
    }
    case Kind::kEncoder: {
      DA_ASSIGN_OR_RETURN(
          module.encoder,
          DilatedTransformerEncoderLayer::Create(LayerFor(c, core)));
      DA_RETURN_IF_ERROR(
          LoadSafetensorsStateDict(path, module.encoder.get(), options));
      return module;
    }
    case Kind::kDecoder: {
      DA_ASSIGN_OR_RETURN(
          module.decoder,
          DilatedTransformerDecoderLayer::Create(LayerFor(c, core)));
      DA_RETURN_IF_ERROR(
          LoadSafetensorsStateDict(path, module.decoder.get(), options));
      return module;
    }
    case Kind::kLongNet: {
      DA_ASSIGN_OR_RETURN(module.longnet, LongNet::Create(LongNetFor(c, core)));
      DA_RETURN_IF_ERROR(
          LoadSafetensorsStateDict(path, module.longnet.get(), options));
      return module;
    }
  }
  return absl::InternalError("unknown kind");
}

}  // namespace testing
}  // namespace models
}  // namespace dilated
