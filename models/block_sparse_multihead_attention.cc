#include "models/block_sparse_multihead_attention.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "attention/registry.h"
#include "factory/status_macros.h"
#include "models/init.h"
#include "models/multihead_attention.h"

namespace dilated {
namespace models {
namespace {

absl::Status CheckInput(const char* name, const Tensor& t, const Tensor& query,
                        int64_t embed_dim) {
  if (t.rank() != 3 || t.dim(2) != embed_dim) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, " must be [batch, seq, embed_dim = ", embed_dim,
                     "], got ", t.ShapeString()));
  }
  if (t.dim(0) != query.dim(0) || t.dim(1) != query.dim(1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        name, " has shape ", t.ShapeString(),
        "; batch and seq must match query's ", query.ShapeString()));
  }
  if (t.dtype() != query.dtype()) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ".dtype is ", DTypeName(t.dtype()),
                     " but query.dtype is ", DTypeName(query.dtype())));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status BlockSparseMultiheadConfig::Validate() const {
  if (embed_dim <= 0 || num_heads <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("embed_dim and num_heads must be positive, got ",
                     embed_dim, " and ", num_heads));
  }
  if (embed_dim % num_heads != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("embed_dim (", embed_dim,
                     ") must be divisible by num_heads (", num_heads, ")"));
  }
  return sparse.Validate();
}

absl::StatusOr<std::unique_ptr<BlockSparseMultiheadAttention>>
BlockSparseMultiheadAttention::Create(
    const BlockSparseMultiheadConfig& config) {
  DA_RETURN_IF_ERROR(config.Validate());
  AttentionConfig attention;
  attention.block_sparse = config.sparse;
  attention.softmax_scale = config.softmax_scale;
  DA_ASSIGN_OR_RETURN(std::unique_ptr<Attention> core,
                      CreateAttention("block_sparse", attention));
  std::unique_ptr<BlockSparseMultiheadAttention> module(
      new BlockSparseMultiheadAttention(config, std::move(core)));
  Rng rng(config.seed);
  for (Linear* linear : {&module->q_proj_, &module->k_proj_, &module->v_proj_,
                         &module->out_proj_}) {
    linear->Reset(1.0, &rng);
  }
  return module;
}

BlockSparseMultiheadAttention::BlockSparseMultiheadAttention(
    const BlockSparseMultiheadConfig& config, std::unique_ptr<Attention> core)
    : config_(config),
      core_(std::move(core)),
      q_proj_(config.embed_dim, config.embed_dim, config.bias),
      k_proj_(config.embed_dim, config.embed_dim, config.bias),
      v_proj_(config.embed_dim, config.embed_dim, config.bias),
      out_proj_(config.embed_dim, config.embed_dim, config.bias) {}

absl::StatusOr<Tensor> BlockSparseMultiheadAttention::Forward(
    const Tensor& query, const Tensor& key, const Tensor& value,
    const ForwardOptions& options) {
  DA_RETURN_IF_ERROR(CheckInput("query", query, query, config_.embed_dim));
  DA_RETURN_IF_ERROR(CheckInput("key", key, query, config_.embed_dim));
  DA_RETURN_IF_ERROR(CheckInput("value", value, query, config_.embed_dim));
  const int64_t heads = config_.num_heads;
  const int64_t head_dim = config_.embed_dim / heads;
  const Tensor q = q_proj_.Forward(query);
  const Tensor k = k_proj_.Forward(key);
  const Tensor v = v_proj_.Forward(value);
  Tensor x = Tensor::Zeros(q.dtype(), {q.dim(0), q.dim(1), config_.embed_dim});
  DA_RETURN_IF_ERROR(core_->Forward(HeadView(q, 0, heads, head_dim),
                                    HeadView(k, 0, heads, head_dim),
                                    HeadView(v, 0, heads, head_dim),
                                    HeadView(x, 0, heads, head_dim), options));
  return out_proj_.Forward(x);
}

void BlockSparseMultiheadAttention::AppendParameters(
    const std::string& prefix, std::vector<NamedParameter>* out) {
  q_proj_.AppendParameters(prefix + "q_proj.", out);
  k_proj_.AppendParameters(prefix + "k_proj.", out);
  v_proj_.AppendParameters(prefix + "v_proj.", out);
  out_proj_.AppendParameters(prefix + "out_proj.", out);
}

}  // namespace models
}  // namespace dilated
