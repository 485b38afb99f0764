// File: transformer_config.h
//
// The configuration shared by DilatedTransformerEncoderLayer and
// DilatedTransformerDecoderLayer (docs/REFERENCE.md §8), and the config of the
// multihead attentions inside them.

#ifndef MODELS_TRANSFORMER_CONFIG_H_
#define MODELS_TRANSFORMER_CONFIG_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "models/multihead_attention.h"
#include "models/ops.h"
#include "models/tensor.h"

namespace dilated {
namespace models {

struct TransformerLayerConfig {
  int64_t d_model = 768;
  int64_t nhead = 12;
  std::vector<int64_t> segment_lengths = {2048, 4096, 8192};
  std::vector<int64_t> dilation_rates = {1, 2, 4};
  int64_t dim_feedforward = 2048;
  Activation activation = Activation::kRelu;
  double layer_norm_eps = 1e-5;
  // MAGNETO gain of the attention's v/out projections and of linear1/linear2.
  double gamma_init = 1.0;
  // LayerNorm placement of the attentions (MultiheadConfig::variant).
  MultiheadVariant variant = MultiheadVariant::kFork;
  // MultiheadConfig::normalize_group_sums of the attentions.
  bool normalize_group_sums = false;
  // Factory name of the attention core; empty for DefaultAttentionCoreName().
  std::string attention_core;
  // MultiheadConfig::communicator of the attentions.
  distributed::Communicator* communicator = nullptr;
  // Seed of the initialisation of a fresh layer.
  uint64_t seed = 0;

  // Returns OK, or InvalidArgument naming the field and the value.
  absl::Status Validate() const;

  // Returns the config of an attention of this layer (bias on, `layer_norm`).
  MultiheadConfig AttentionConfig(bool layer_norm) const;
};

// Returns InvalidArgument naming `name` unless `t` is [batch, seq, d_model]
// with a positive batch and a sequence length (seq times `shards`, the
// shards of a sequence-parallel run) that is a multiple of every segment
// length.
absl::Status CheckLayerInput(const char* name, const Tensor& t, int64_t d_model,
                             const std::vector<int64_t>& segment_lengths,
                             int64_t shards = 1);

}  // namespace models
}  // namespace dilated

#endif  // MODELS_TRANSFORMER_CONFIG_H_
