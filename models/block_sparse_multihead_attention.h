// File: block_sparse_multihead_attention.h
//
// BlockSparseMultiheadAttention: projections around the "block_sparse"
// attention (attention/block_sparse.h), with the parameter names of the
// Python library's BlockSparseRingMultiheadDilatedAttention so that its
// checkpoints load (state_dict.h): q_proj.{weight,bias}, k_proj.*, v_proj.*,
// out_proj.*. No LayerNorm, as in that module.
//
//   y = out_proj(block_sparse(q_proj(query), k_proj(key), v_proj(value)))
//
// with the heads split head-major (channel c in head c / head_dim). A key
// padding mask (ForwardOptions::key_padding_mask) masks padded keys out of
// the softmax, and padded query rows attend to nothing (0 before out_proj);
// the Python module instead zeroes k and v at padded positions, which still
// gives them weight. Inference only.
//
//   dilated::models::BlockSparseMultiheadConfig config;
//   config.embed_dim = 512;
//   config.num_heads = 8;
//   config.sparse.pattern = dilated::BlockPattern::kLocalWindow;
//   auto mha = dilated::models::BlockSparseMultiheadAttention::Create(config);
//   absl::StatusOr<dilated::models::Tensor> y = (*mha)->Forward(x, x, x, {});

#ifndef MODELS_BLOCK_SPARSE_MULTIHEAD_ATTENTION_H_
#define MODELS_BLOCK_SPARSE_MULTIHEAD_ATTENTION_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "attention/attention.h"
#include "attention/block_layout.h"
#include "attention/options.h"
#include "models/linear.h"
#include "models/module.h"
#include "models/tensor.h"

namespace dilated {
namespace models {

struct BlockSparseMultiheadConfig {
  int64_t embed_dim = 512;
  int64_t num_heads = 8;
  // Biases on the projections.
  bool bias = true;
  // Block size and layout of the attention core.
  BlockSparseConfig sparse;
  std::optional<double> softmax_scale;
  // Seed of a fresh module's Xavier-normal weights (biases start at zero).
  uint64_t seed = 0;

  // Returns OK, or InvalidArgument naming the field and the value.
  absl::Status Validate() const;
};

class BlockSparseMultiheadAttention : public Module {
 public:
  // Returns a fresh module, or InvalidArgument for a bad config.
  static absl::StatusOr<std::unique_ptr<BlockSparseMultiheadAttention>> Create(
      const BlockSparseMultiheadConfig& config);

  const BlockSparseMultiheadConfig& config() const { return config_; }

  // Returns the attention of query over key and value, [batch, seq,
  // embed_dim] in query's dtype, with options.is_causal and
  // options.key_padding_mask ([batch, seq] bool on the CPU). InvalidArgument,
  // naming the tensor, when a tensor is not [batch, seq, embed_dim], they
  // differ in batch, seq or dtype, or seq is not a multiple of the block size.
  absl::StatusOr<Tensor> Forward(const Tensor& query, const Tensor& key,
                                 const Tensor& value,
                                 const ForwardOptions& options);

  void AppendParameters(const std::string& prefix,
                        std::vector<NamedParameter>* out) override;

 private:
  BlockSparseMultiheadAttention(const BlockSparseMultiheadConfig& config,
                                std::unique_ptr<Attention> core);

  BlockSparseMultiheadConfig config_;
  std::unique_ptr<Attention> core_;
  Linear q_proj_;
  Linear k_proj_;
  Linear v_proj_;
  Linear out_proj_;
};

}  // namespace models
}  // namespace dilated

#endif  // MODELS_BLOCK_SPARSE_MULTIHEAD_ATTENTION_H_
