// File: multihead_attention.h
//
// The multihead dilated attention modules' shared part: their configuration,
// input validation, the head split and the attention core. Two modules
// implement it, with the reference's PyTorch parameter names:
//
//   - MultiheadDilatedAttention (multihead_dilated_attention.h): separate
//     q/k/v projections ("multihead_standard");
//   - FusedMultiheadDilatedAttention (fused_multihead_dilated_attention.h):
//     one fused qkv projection ("multihead_improved", "multihead_auto").
//
// Inference only: dropout is the identity, as in PyTorch's eval() mode.
//
//   dilated::models::MultiheadConfig config;
//   config.embed_dim = 768;
//   config.num_heads = 12;
//   absl::StatusOr<std::unique_ptr<dilated::models::MultiheadAttention>> mha =
//       dilated::models::CreateMultiheadAttention("multihead_standard",
//                                                 config);
//   absl::StatusOr<dilated::models::Tensor> y =
//       (*mha)->Forward(x, x, x, /*is_causal=*/true);

#ifndef MODELS_MULTIHEAD_ATTENTION_H_
#define MODELS_MULTIHEAD_ATTENTION_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "attention/attention.h"
#include "models/module.h"
#include "models/tensor.h"

namespace dilated {
namespace models {

// Where the LayerNorms of a multihead module sit (docs/REFERENCE.md §6, §7.2).
enum class MultiheadVariant {
  // The reference fork: with layer_norm, q_ln(q) and k_ln(k) after the
  // projections (a QK-LayerNorm), and the same q_ln again on the merged
  // attention output before out_proj. Parameters q_ln.*, k_ln.*.
  kFork,
  // The upstream library: with layer_norm, one sub-LayerNorm "norm" on the
  // merged attention output before out_proj (MAGNETO). Parameters norm.*.
  kUpstream,
};

struct MultiheadConfig {
  int64_t embed_dim = 768;
  int64_t num_heads = 12;
  std::vector<int64_t> segment_lengths = {2048, 4096, 8192};
  std::vector<int64_t> dilation_rates = {1, 2, 4};
  // Biases on the projections.
  bool bias = true;
  // The LayerNorms of `variant`.
  bool layer_norm = true;
  double layer_norm_eps = 1e-5;
  // MAGNETO gain of the value and output projections of a fresh module.
  double gamma_init = 1.0;
  MultiheadVariant variant = MultiheadVariant::kFork;
  // The upstream library's extra step (docs/REFERENCE.md §6): every head's
  // output is divided, per (batch, channel), by G times its sum over the
  // sequence. Off in the fork; only for checkpoints trained with upstream's
  // attention.
  bool normalize_group_sums = false;
  // Factory name of the attention core; empty for DefaultAttentionCoreName().
  std::string attention_core;
  // With a sequence-parallel core ("ring", "distributed"): the ranks whose
  // inputs are the shards of one sequence (AttentionConfig::communicator).
  // Not owned. Forward only.
  distributed::Communicator* communicator = nullptr;
  // Seed of the initialisation of a fresh module.
  uint64_t seed = 0;

  // Returns OK, or InvalidArgument naming the field and the value.
  absl::Status Validate() const;

  int64_t head_dim() const { return embed_dim / num_heads; }
};

class MultiheadAttention : public Module {
 public:
  ~MultiheadAttention() override;

  const MultiheadConfig& config() const { return config_; }
  // Returns the factory name of the attention core in use.
  const std::string& attention_core() const { return core_->name(); }

  // Returns the attention of query over key and value, [batch, seq,
  // embed_dim] in query's dtype. InvalidArgument, naming the tensor, when a
  // tensor is not [batch, seq, embed_dim], the three differ in batch, seq or
  // dtype, or seq is not a multiple of every segment length.
  absl::StatusOr<Tensor> Forward(const Tensor& query, const Tensor& key,
                                 const Tensor& value, bool is_causal);

  // Self-attention: Forward(x, x, x, is_causal).
  absl::StatusOr<Tensor> Forward(const Tensor& x, bool is_causal) {
    return Forward(x, x, x, is_causal);
  }

  // Re-initialises every parameter from `seed` (MAGNETO: Xavier-normal q and
  // k projections with gain 1, v and out with gamma_init, zero biases,
  // LayerNorms at one and zero).
  virtual void Reset(uint64_t seed) = 0;

 protected:
  MultiheadAttention(MultiheadConfig config, std::unique_ptr<Attention> core);

  // Forward on validated inputs; `key_is_query` and `value_is_query` say
  // whether key and value are the very object query is.
  virtual absl::StatusOr<Tensor> DoForward(
      const Tensor& query, const Tensor& key, const Tensor& value,
      bool key_is_query, bool value_is_query, bool is_causal) = 0;

  // Returns the core's attention of the heads of q, k and v, merged back to
  // [batch, seq, embed_dim]. Each of q, k, v is a [batch, seq, row_width]
  // tensor whose columns [column, column + embed_dim) hold the heads
  // (head-major: channel c belongs to head c / head_dim).
  absl::StatusOr<Tensor> Attend(const Tensor& q, int64_t q_column,
                                const Tensor& k, int64_t k_column,
                                const Tensor& v, int64_t v_column,
                                bool is_causal);

 private:
  MultiheadConfig config_;
  std::unique_ptr<Attention> core_;
};

// Returns the [batch, seq, heads, head_dim] view of columns [column, column +
// heads * head_dim) of the [batch, seq, width] tensor `t`.
TensorView HeadView(const Tensor& t, int64_t column, int64_t heads,
                    int64_t head_dim);

}  // namespace models
}  // namespace dilated

#endif  // MODELS_MULTIHEAD_ATTENTION_H_
