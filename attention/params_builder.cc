#include "attention/params_builder.h"

#include <cmath>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "factory/status_macros.h"

namespace dilated {
namespace {

constexpr const char* kLayout = "[batch, seq, heads, head_dim]";

absl::Status CheckAttentionTensor(const char* name, const TensorView& t) {
  if (t.data == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(name, ".data is null"));
  }
  if (t.rank != 4) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, " must be a 4-D tensor ", kLayout, ", got ", t.rank,
                     "-D with shape ", t.ShapeString()));
  }
  for (int d = 0; d < 4; ++d) {
    if (t.shape[d] <= 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          name, ".shape[", d, "] must be positive, got ", t.shape[d]));
    }
  }
  if (t.strides[3] != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ".strides[3] must be 1 (head_dim contiguous), got ",
                     t.strides[3]));
  }
  return absl::OkStatus();
}

// Checks `t` like q and requires the same shape, dtype and device as q.
absl::Status CheckLikeQuery(const char* name, const TensorView& t,
                            const TensorView& q) {
  DA_RETURN_IF_ERROR(CheckAttentionTensor(name, t));
  for (int d = 0; d < 4; ++d) {
    if (t.shape[d] != q.shape[d]) {
      return absl::InvalidArgumentError(absl::StrCat(
          name, ".shape ", t.ShapeString(), " does not match q.shape ",
          q.ShapeString(), " at dimension ", d));
    }
  }
  if (t.dtype != q.dtype) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ".dtype is ", DTypeName(t.dtype), " but q.dtype is ",
                     DTypeName(q.dtype)));
  }
  if (t.device != q.device) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, " is on ", DeviceName(t.device), " but q is on ",
                     DeviceName(q.device)));
  }
  return absl::OkStatus();
}

absl::Status CheckLse(const TensorView& lse, const TensorView& q) {
  const std::string expected =
      absl::StrCat("[", q.shape[0], ", ", q.shape[2], ", ", q.shape[1], "]");
  if (lse.data == nullptr) {
    return absl::InvalidArgumentError("lse.data is null");
  }
  if (lse.rank != 3 || lse.shape[0] != q.shape[0] ||
      lse.shape[1] != q.shape[2] || lse.shape[2] != q.shape[1]) {
    return absl::InvalidArgumentError(
        absl::StrCat("lse must have shape [batch, heads, seq] = ", expected,
                     ", got ", lse.ShapeString()));
  }
  if (lse.dtype != DType::kFloat32) {
    return absl::InvalidArgumentError(
        absl::StrCat("lse.dtype must be float32, got ", DTypeName(lse.dtype)));
  }
  if (lse.strides[2] != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "lse.strides[2] must be 1 (seq contiguous), got ", lse.strides[2]));
  }
  if (lse.device != q.device) {
    return absl::InvalidArgumentError(
        absl::StrCat("lse is on ", DeviceName(lse.device), " but q is on ",
                     DeviceName(q.device)));
  }
  return absl::OkStatus();
}

kernels::TensorParams ToParams(const TensorView& t) {
  return kernels::TensorParams{t.data, t.strides[0], t.strides[1],
                               t.strides[2]};
}

}  // namespace

std::vector<kernels::GroupParams> PartitionHeads(const AttentionConfig& config,
                                                 int64_t num_heads) {
  const int64_t num_groups = config.num_groups();
  std::vector<kernels::GroupParams> groups(num_groups);
  int64_t head_begin = 0;
  for (int64_t i = 0; i < num_groups; ++i) {
    kernels::GroupParams& g = groups[i];
    g.head_begin = head_begin;
    g.num_heads = num_heads / num_groups + (i < num_heads % num_groups ? 1 : 0);
    g.segment_length = config.segment_lengths[i];
    g.dilation_rate = config.dilation_rates[i];
    g.offset = i % g.dilation_rate;
    g.positions = g.offset >= g.segment_length
                      ? 0
                      : (g.segment_length - g.offset + g.dilation_rate - 1) /
                            g.dilation_rate;
    head_begin += g.num_heads;
  }
  return groups;
}

absl::StatusOr<kernels::ForwardParams> MakeForwardParams(
    const AttentionConfig& config, const TensorView& q, const TensorView& k,
    const TensorView& v, const TensorView& out, const TensorView* lse,
    bool is_causal) {
  DA_RETURN_IF_ERROR(CheckAttentionTensor("q", q));
  DA_RETURN_IF_ERROR(CheckLikeQuery("k", k, q));
  DA_RETURN_IF_ERROR(CheckLikeQuery("v", v, q));
  DA_RETURN_IF_ERROR(CheckLikeQuery("out", out, q));
  const int64_t seq_len = q.shape[1];
  const int64_t num_heads = q.shape[2];
  for (int i = 0; i < config.num_groups(); ++i) {
    if (seq_len % config.segment_lengths[i] != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("sequence length ", seq_len,
                       " (q.shape[1]) is not divisible by "
                       "segment_lengths[",
                       i, "] = ", config.segment_lengths[i]));
    }
  }
  if (num_heads < config.num_groups()) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_heads ", num_heads,
                     " (q.shape[2]) must be >= the number of "
                     "groups ",
                     config.num_groups(), " (len(segment_lengths))"));
  }
  if (lse != nullptr) DA_RETURN_IF_ERROR(CheckLse(*lse, q));

  kernels::ForwardParams params{};
  params.q = ToParams(q);
  params.k = ToParams(k);
  params.v = ToParams(v);
  params.out = ToParams(out);
  if (lse != nullptr) {
    params.lse = static_cast<float*>(lse->data);
    params.lse_stride_b = lse->strides[0];
    params.lse_stride_h = lse->strides[1];
  }
  params.batch = q.shape[0];
  params.seq_len = seq_len;
  params.num_heads = num_heads;
  params.head_dim = q.shape[3];
  params.dtype = q.dtype;
  params.softmax_scale = static_cast<float>(config.softmax_scale.value_or(
      1.0 / std::sqrt(static_cast<double>(params.head_dim))));
  params.output_scale = 1.0f / static_cast<float>(config.num_groups());
  params.is_causal = is_causal;
  params.num_groups = config.num_groups();
  const std::vector<kernels::GroupParams> groups =
      PartitionHeads(config, num_heads);
  for (int i = 0; i < params.num_groups; ++i) params.groups[i] = groups[i];
  return params;
}

absl::StatusOr<kernels::BackwardParams> MakeBackwardParams(
    const AttentionConfig& config, const TensorView& q, const TensorView& k,
    const TensorView& v, const TensorView& out, const TensorView& lse,
    const TensorView& grad_out, const TensorView& grad_q,
    const TensorView& grad_k, const TensorView& grad_v, bool is_causal) {
  kernels::BackwardParams params{};
  DA_ASSIGN_OR_RETURN(params.forward,
                      MakeForwardParams(config, q, k, v, out, &lse, is_causal));
  DA_RETURN_IF_ERROR(CheckLikeQuery("grad_out", grad_out, q));
  DA_RETURN_IF_ERROR(CheckLikeQuery("grad_q", grad_q, q));
  DA_RETURN_IF_ERROR(CheckLikeQuery("grad_k", grad_k, q));
  DA_RETURN_IF_ERROR(CheckLikeQuery("grad_v", grad_v, q));
  params.grad_out = ToParams(grad_out);
  params.grad_q = ToParams(grad_q);
  params.grad_k = ToParams(grad_k);
  params.grad_v = ToParams(grad_v);
  return params;
}

}  // namespace dilated
