// File: long_net.h
//
// LongNet (docs/REFERENCE.md §8): a stack of DilatedTransformerEncoderLayers
// over the input, then a stack of DilatedTransformerDecoderLayers over the
// ORIGINAL input with the encoder's output as memory; is_causal applies to the
// encoder, the decoder's self-attention and its cross-attention. No final
// LayerNorms. Fresh models use the MAGNETO gains: encoder
// sqrt(ln(3 N_dec) ln(2 N_enc) / 3), decoder sqrt(ln(3 N_dec)).
//
// State-dict names: encoder.layers.<i>.* and decoder.layers.<i>.*, as
// torch.nn.TransformerEncoder/Decoder name them.
//
// Unlike the reference, whose containers deep-copy one initialised layer
// (docs/REFERENCE.md §15 item 14), the layers of a fresh model are initialised
// one by one from the seeded generator, so they differ.
//
//   dilated::models::LongNetConfig config;  // the paper's base model
//   config.num_encoder_layers = config.num_decoder_layers = 1;
//   absl::StatusOr<std::unique_ptr<dilated::models::LongNet>> model =
//       dilated::models::LongNet::Create(config);
//   absl::StatusOr<dilated::models::Tensor> y =
//       (*model)->Forward(x, /*is_causal=*/true);

#ifndef MODELS_LONG_NET_H_
#define MODELS_LONG_NET_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "models/decoder_layer.h"
#include "models/encoder_layer.h"
#include "models/transformer_config.h"

namespace dilated {
namespace models {

struct LongNetConfig {
  int64_t d_model = 768;
  int64_t nhead = 12;
  int64_t num_encoder_layers = 12;
  int64_t num_decoder_layers = 12;
  int64_t dim_feedforward = 3072;
  std::vector<int64_t> segment_lengths = {2048, 4096, 8192, 16384, 32768};
  std::vector<int64_t> dilation_rates = {1, 2, 4, 6, 12};
  Activation activation = Activation::kRelu;
  double layer_norm_eps = 1e-5;
  MultiheadVariant variant = MultiheadVariant::kFork;
  bool normalize_group_sums = false;
  // Factory name of the attention core; empty for DefaultAttentionCoreName().
  std::string attention_core;
  // MultiheadConfig::communicator of every attention: x is then this rank's
  // shard of the sequence (forward only).
  distributed::Communicator* communicator = nullptr;
  uint64_t seed = 0;

  // Returns OK, or InvalidArgument naming the field and the value (both
  // layer counts must be >= 1, as the gain formulas need).
  absl::Status Validate() const;

  // Returns the config of the encoder (is_encoder) or decoder layers, with
  // their MAGNETO gain.
  TransformerLayerConfig LayerConfig(bool is_encoder) const;
};

class LongNet : public Module {
 public:
  // Returns a model initialised from config.seed; InvalidArgument for a bad
  // config, NotFound for an unknown attention core.
  static absl::StatusOr<std::unique_ptr<LongNet>> Create(
      const LongNetConfig& config);

  // Returns the model's output for x [batch, seq, d_model], or
  // InvalidArgument naming x when its shape is wrong or seq is not a multiple
  // of every segment length.
  absl::StatusOr<Tensor> Forward(const Tensor& x, bool is_causal = true);

  const LongNetConfig& config() const { return config_; }

  void AppendParameters(const std::string& prefix,
                        std::vector<NamedParameter>* out) override;

 private:
  explicit LongNet(const LongNetConfig& config) : config_(config) {}

  LongNetConfig config_;
  std::vector<std::unique_ptr<DilatedTransformerEncoderLayer>> encoder_;
  std::vector<std::unique_ptr<DilatedTransformerDecoderLayer>> decoder_;
};

}  // namespace models
}  // namespace dilated

#endif  // MODELS_LONG_NET_H_
