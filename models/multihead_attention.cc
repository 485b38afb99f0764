#include "models/multihead_attention.h"

#include <cmath>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "attention/config.h"
#include "factory/status_macros.h"
#include "models/attention_core.h"

namespace dilated {
namespace models {
namespace {

// Divides every (batch, head, channel) column of the [b, n, E] tensor `out`
// by G times its sum over the sequence (upstream's group normalisation).
void NormalizeGroupSums(int64_t num_groups, Tensor* out) {
  const int64_t batch = out->dim(0);
  const int64_t seq = out->dim(1);
  const int64_t width = out->dim(2);
  std::vector<float> values = out->ToFloat32();
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < batch; ++b) {
    std::vector<double> sums(width, 0.0);
    float* base = values.data() + b * seq * width;
    for (int64_t n = 0; n < seq; ++n) {
      for (int64_t c = 0; c < width; ++c) sums[c] += base[n * width + c];
    }
    for (int64_t n = 0; n < seq; ++n) {
      for (int64_t c = 0; c < width; ++c) {
        base[n * width + c] = static_cast<float>(
            base[n * width + c] / (static_cast<double>(num_groups) * sums[c]));
      }
    }
  }
  out->AssignFromFloat32(values);
}

absl::Status CheckRank3(const char* name, const Tensor& t, const Tensor& query,
                        const Tensor& key, const Tensor& value) {
  if (t.rank() == 3) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      name,
      " must be a 3-D tensor [batch, seq_len, embed_dim]; got shapes "
      "query=",
      query.ShapeString(), ", key=", key.ShapeString(),
      ", value=", value.ShapeString()));
}

}  // namespace

absl::Status MultiheadConfig::Validate() const {
  if (embed_dim <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("embed_dim must be positive, got ", embed_dim));
  }
  if (num_heads <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_heads must be positive, got ", num_heads));
  }
  if (embed_dim % num_heads != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("embed_dim (", embed_dim,
                     ") must be divisible by num_heads (", num_heads, ")"));
  }
  if (!(layer_norm_eps > 0.0) || !std::isfinite(layer_norm_eps)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "layer_norm_eps must be positive and finite, got ", layer_norm_eps));
  }
  if (!(gamma_init > 0.0) || !std::isfinite(gamma_init)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "gamma_init must be positive and finite, got ", gamma_init));
  }
  AttentionConfig attention;
  attention.segment_lengths = segment_lengths;
  attention.dilation_rates = dilation_rates;
  DA_RETURN_IF_ERROR(attention.Validate());
  if (num_heads < attention.num_groups()) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_heads (", num_heads, ") must be >= num_groups (",
                     attention.num_groups(), ", len(segment_lengths))"));
  }
  if (normalize_group_sums && SequenceShards(communicator) > 1) {
    return absl::UnimplementedError(absl::StrCat(
        "normalize_group_sums sums over the whole sequence, which a "
        "communicator of ",
        SequenceShards(communicator), " ranks spreads over several processes"));
  }
  return absl::OkStatus();
}

MultiheadAttention::MultiheadAttention(MultiheadConfig config,
                                       std::unique_ptr<Attention> core)
    : config_(std::move(config)), core_(std::move(core)) {}

MultiheadAttention::~MultiheadAttention() = default;

absl::StatusOr<Tensor> MultiheadAttention::Forward(const Tensor& query,
                                                   const Tensor& key,
                                                   const Tensor& value,
                                                   bool is_causal) {
  DA_RETURN_IF_ERROR(CheckRank3("query", query, query, key, value));
  DA_RETURN_IF_ERROR(CheckRank3("key", key, query, key, value));
  DA_RETURN_IF_ERROR(CheckRank3("value", value, query, key, value));
  for (const auto& [name, t] :
       {std::pair<const char*, const Tensor*>{"key", &key},
        {"value", &value}}) {
    if (t->dim(0) != query.dim(0) || t->dim(1) != query.dim(1)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "batch size and sequence length must match for query, key and "
          "value; got query=",
          query.ShapeString(), ", key=", key.ShapeString(),
          ", value=", value.ShapeString(), " (", name, " differs)"));
    }
    if (t->dtype() != query.dtype()) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ".dtype is ", DTypeName(t->dtype()),
                       " but query.dtype is ", DTypeName(query.dtype())));
    }
  }
  for (const auto& [name, t] :
       {std::pair<const char*, const Tensor*>{"query", &query},
        {"key", &key},
        {"value", &value}}) {
    if (t->dim(2) != config_.embed_dim) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, "'s embedding dimension (", t->dim(2),
                       ") doesn't match embed_dim (", config_.embed_dim, ")"));
    }
  }
  if (query.dim(0) == 0 || query.dim(1) == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "query must have a positive batch and sequence length, got ",
        query.ShapeString()));
  }
  const int64_t shards = SequenceShards(config_.communicator);
  const int64_t seq_len = query.dim(1) * shards;
  for (size_t i = 0; i < config_.segment_lengths.size(); ++i) {
    if (seq_len % config_.segment_lengths[i] != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "sequence length ", seq_len, " (query.shape[1]",
          shards > 1 ? absl::StrCat(" times ", shards, " ranks") : "",
          ") is not divisible by segment_lengths[", i,
          "] = ", config_.segment_lengths[i]));
    }
  }
  return DoForward(query, key, value, &key == &query, &value == &query,
                   is_causal);
}

absl::StatusOr<Tensor> MultiheadAttention::Attend(
    const Tensor& q, int64_t q_column, const Tensor& k, int64_t k_column,
    const Tensor& v, int64_t v_column, bool is_causal) {
  const int64_t heads = config_.num_heads;
  const int64_t head_dim = config_.head_dim();
  // Attention::Forward writes every element of out.
  Tensor out =
      Tensor::Uninitialized(q.dtype(), {q.dim(0), q.dim(1), config_.embed_dim});
  ForwardOptions options;
  options.is_causal = is_causal;
  DA_RETURN_IF_ERROR(core_->Forward(HeadView(q, q_column, heads, head_dim),
                                    HeadView(k, k_column, heads, head_dim),
                                    HeadView(v, v_column, heads, head_dim),
                                    HeadView(out, 0, heads, head_dim),
                                    options));
  if (config_.normalize_group_sums) {
    NormalizeGroupSums(static_cast<int64_t>(config_.segment_lengths.size()),
                       &out);
  }
  return out;
}

TensorView HeadView(const Tensor& t, int64_t column, int64_t heads,
                    int64_t head_dim) {
  const int64_t width = t.dim(2);
  TensorView view;
  view.data = static_cast<char*>(const_cast<void*>(t.data())) +
              column * DTypeSize(t.dtype());
  view.dtype = t.dtype();
  view.device = Device::Cpu();
  view.rank = 4;
  view.shape[0] = t.dim(0);
  view.shape[1] = t.dim(1);
  view.shape[2] = heads;
  view.shape[3] = head_dim;
  view.strides[0] = t.dim(1) * width;
  view.strides[1] = width;
  view.strides[2] = head_dim;
  view.strides[3] = 1;
  return view;
}

}  // namespace models
}  // namespace dilated
