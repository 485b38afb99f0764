#include "attention/params_builder.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "factory/status_macros.h"
#include "kernels/dropout_rng.h"

namespace dilated {
namespace {

// The shape every attention tensor of a call has: [batch, seq, heads,
// head_dim], or [total, heads, head_dim] when packed.
struct Layout {
  bool packed;
  int rank() const { return packed ? 3 : 4; }
  const char* name() const {
    return packed ? "[total, heads, head_dim]"
                  : "[batch, seq, heads, head_dim]";
  }
};

absl::Status CheckAttentionTensor(const char* name, const TensorView& t,
                                  const Layout& layout) {
  if (t.data == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(name, ".data is null"));
  }
  if (t.rank != layout.rank()) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, " must be a ", layout.rank(), "-D tensor ",
                     layout.name(), layout.packed ? " (cu_seqlens given)" : "",
                     ", got ", t.rank, "-D with shape ", t.ShapeString()));
  }
  for (int d = 0; d < t.rank; ++d) {
    if (t.shape[d] <= 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          name, ".shape[", d, "] must be positive, got ", t.shape[d]));
    }
  }
  if (t.dtype != DType::kFloat32 && t.dtype != DType::kFloat16 &&
      t.dtype != DType::kBFloat16) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ".dtype must be float32, float16 or bfloat16, got ",
                     DTypeName(t.dtype)));
  }
  if (t.strides[t.rank - 1] != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        name, ".strides[", t.rank - 1,
        "] must be 1 (head_dim contiguous), got ", t.strides[t.rank - 1]));
  }
  return absl::OkStatus();
}

// Checks `t` like q and requires the same shape, dtype and device as q.
absl::Status CheckLikeQuery(const char* name, const TensorView& t,
                            const TensorView& q, const Layout& layout) {
  DA_RETURN_IF_ERROR(CheckAttentionTensor(name, t, layout));
  for (int d = 0; d < t.rank; ++d) {
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

absl::Status CheckLse(const TensorView& lse, const TensorView& q,
                      const Layout& layout) {
  if (lse.data == nullptr) {
    return absl::InvalidArgumentError("lse.data is null");
  }
  if (layout.packed) {
    if (lse.rank != 2 || lse.shape[0] != q.shape[1] ||
        lse.shape[1] != q.shape[0]) {
      return absl::InvalidArgumentError(absl::StrCat(
          "lse must have shape [heads, total] = [", q.shape[1], ", ",
          q.shape[0], "] for packed input, got ", lse.ShapeString()));
    }
  } else if (lse.rank != 3 || lse.shape[0] != q.shape[0] ||
             lse.shape[1] != q.shape[2] || lse.shape[2] != q.shape[1]) {
    return absl::InvalidArgumentError(absl::StrCat(
        "lse must have shape [batch, heads, seq] = [", q.shape[0], ", ",
        q.shape[2], ", ", q.shape[1], "], got ", lse.ShapeString()));
  }
  if (lse.dtype != DType::kFloat32) {
    return absl::InvalidArgumentError(
        absl::StrCat("lse.dtype must be float32, got ", DTypeName(lse.dtype)));
  }
  if (lse.strides[lse.rank - 1] != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "lse.strides[", lse.rank - 1, "] must be 1 (seq contiguous), got ",
        lse.strides[lse.rank - 1]));
  }
  if (lse.device != q.device) {
    return absl::InvalidArgumentError(
        absl::StrCat("lse is on ", DeviceName(lse.device), " but q is on ",
                     DeviceName(q.device)));
  }
  return absl::OkStatus();
}

// Checks cu_seqlens against the packed q ([total, heads, head_dim]) and
// returns the longest sequence (total when the values live on a device).
absl::StatusOr<int64_t> CheckCuSeqlens(const TensorView& cu,
                                       const TensorView& q) {
  if (cu.data == nullptr) {
    return absl::InvalidArgumentError("cu_seqlens.data is null");
  }
  if (cu.dtype != DType::kInt32) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cu_seqlens.dtype must be int32, got ", DTypeName(cu.dtype)));
  }
  if (cu.rank != 1 || cu.shape[0] < 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cu_seqlens must be a 1-D tensor [batch + 1] with batch >= 1, got "
        "shape ",
        cu.ShapeString()));
  }
  if (cu.strides[0] != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("cu_seqlens.strides[0] must be 1, got ", cu.strides[0]));
  }
  if (cu.device.type != DeviceType::kCpu && cu.device != q.device) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cu_seqlens is on ", DeviceName(cu.device),
        " but must be on the cpu or on q's device ", DeviceName(q.device)));
  }
  const int64_t total = q.shape[0];
  if (cu.device.type != DeviceType::kCpu) return total;
  const int32_t* offsets = static_cast<const int32_t*>(cu.data);
  const int64_t batch = cu.shape[0] - 1;
  if (offsets[0] != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cu_seqlens[0] must be 0, got ", offsets[0]));
  }
  int64_t longest = 0;
  for (int64_t i = 0; i < batch; ++i) {
    if (offsets[i + 1] < offsets[i]) {
      return absl::InvalidArgumentError(absl::StrCat(
          "cu_seqlens must be non-decreasing, got cu_seqlens[", i,
          "] = ", offsets[i], " > cu_seqlens[", i + 1, "] = ", offsets[i + 1]));
    }
    longest = std::max<int64_t>(longest, offsets[i + 1] - offsets[i]);
  }
  if (offsets[batch] != total) {
    return absl::InvalidArgumentError(
        absl::StrCat("cu_seqlens[", batch, "] = ", offsets[batch],
                     " must equal the total rows q.shape[0] = ", total));
  }
  return longest;
}

absl::Status CheckKeyPaddingMask(const TensorView& mask, const TensorView& q) {
  if (mask.data == nullptr) {
    return absl::InvalidArgumentError("key_padding_mask.data is null");
  }
  if (mask.dtype != DType::kBool) {
    return absl::InvalidArgumentError(absl::StrCat(
        "key_padding_mask.dtype must be bool, got ", DTypeName(mask.dtype)));
  }
  if (mask.rank != 2 || mask.shape[0] != q.shape[0] ||
      mask.shape[1] != q.shape[1]) {
    return absl::InvalidArgumentError(absl::StrCat(
        "key_padding_mask must have shape [batch, seq] = [", q.shape[0], ", ",
        q.shape[1], "], got ", mask.ShapeString()));
  }
  if (mask.strides[1] != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "key_padding_mask.strides[1] must be 1, got ", mask.strides[1]));
  }
  if (mask.device != q.device) {
    return absl::InvalidArgumentError(
        absl::StrCat("key_padding_mask is on ", DeviceName(mask.device),
                     " but q is on ", DeviceName(q.device)));
  }
  return absl::OkStatus();
}

kernels::TensorParams ToParams(const TensorView& t, const Layout& layout) {
  if (layout.packed) {
    return kernels::TensorParams{t.data, 0, t.strides[0], t.strides[1]};
  }
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
    g.positions = kernels::SegmentPositions(g, g.segment_length);
    head_begin += g.num_heads;
  }
  return groups;
}

absl::StatusOr<kernels::ForwardParams> MakeForwardParams(
    const AttentionConfig& config, const TensorView& q, const TensorView& k,
    const TensorView& v, const TensorView& out, const TensorView* lse,
    const ForwardOptions& options) {
  if (options.cu_seqlens.has_value() && options.key_padding_mask.has_value()) {
    return absl::InvalidArgumentError(
        "cu_seqlens and key_padding_mask were both given; packed sequences "
        "carry no padding (give one or the other)");
  }
  const Layout layout{options.cu_seqlens.has_value()};
  DA_RETURN_IF_ERROR(CheckAttentionTensor("q", q, layout));
  DA_RETURN_IF_ERROR(CheckLikeQuery("k", k, q, layout));
  DA_RETURN_IF_ERROR(CheckLikeQuery("v", v, q, layout));
  DA_RETURN_IF_ERROR(CheckLikeQuery("out", out, q, layout));
  const int heads_axis = layout.packed ? 1 : 2;
  const int64_t num_heads = q.shape[heads_axis];
  if (num_heads < config.num_groups()) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_heads ", num_heads, " (q.shape[", heads_axis,
                     "]) must be >= the number of groups ", config.num_groups(),
                     " (len(segment_lengths))"));
  }
  if (lse != nullptr) DA_RETURN_IF_ERROR(CheckLse(*lse, q, layout));

  kernels::ForwardParams params{};
  if (layout.packed) {
    DA_ASSIGN_OR_RETURN(params.sequence.max_seq_len,
                        CheckCuSeqlens(*options.cu_seqlens, q));
    params.sequence.cu_seqlens =
        static_cast<const int32_t*>(options.cu_seqlens->data);
    params.batch = options.cu_seqlens->shape[0] - 1;
    params.seq_len = q.shape[0];
  } else {
    params.batch = q.shape[0];
    params.seq_len = q.shape[1];
    params.sequence.max_seq_len = params.seq_len;
  }
  if (options.key_padding_mask.has_value()) {
    DA_RETURN_IF_ERROR(CheckKeyPaddingMask(*options.key_padding_mask, q));
    params.sequence.key_padding_mask =
        static_cast<const uint8_t*>(options.key_padding_mask->data);
    params.sequence.mask_stride_b = options.key_padding_mask->strides[0];
  }
  params.q = ToParams(q, layout);
  params.k = ToParams(k, layout);
  params.v = ToParams(v, layout);
  params.out = ToParams(out, layout);
  if (lse != nullptr) {
    params.lse = static_cast<float*>(lse->data);
    params.lse_stride_b = layout.packed ? 0 : lse->strides[0];
    params.lse_stride_h = layout.packed ? lse->strides[0] : lse->strides[1];
  }
  params.key_seq_len = params.seq_len;
  params.key_position_offset = 0;
  params.num_heads = num_heads;
  params.head_dim = q.shape[q.rank - 1];
  params.dtype = q.dtype;
  params.softmax_scale = static_cast<float>(config.softmax_scale.value_or(
      1.0 / std::sqrt(static_cast<double>(params.head_dim))));
  params.output_scale = 1.0f / static_cast<float>(config.num_groups());
  params.is_causal = options.is_causal;
  if (options.training) {
    params.dropout = kernels::MakeDropoutParams(
        config.dropout, options.dropout_seed, options.dropout_offset);
  }
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
    const TensorView& grad_k, const TensorView& grad_v,
    const ForwardOptions& options) {
  kernels::BackwardParams params{};
  DA_ASSIGN_OR_RETURN(params.forward,
                      MakeForwardParams(config, q, k, v, out, &lse, options));
  const Layout layout{options.cu_seqlens.has_value()};
  DA_RETURN_IF_ERROR(CheckLikeQuery("grad_out", grad_out, q, layout));
  DA_RETURN_IF_ERROR(CheckLikeQuery("grad_q", grad_q, q, layout));
  DA_RETURN_IF_ERROR(CheckLikeQuery("grad_k", grad_k, q, layout));
  DA_RETURN_IF_ERROR(CheckLikeQuery("grad_v", grad_v, q, layout));
  params.grad_out = ToParams(grad_out, layout);
  params.grad_q = ToParams(grad_q, layout);
  params.grad_k = ToParams(grad_k, layout);
  params.grad_v = ToParams(grad_v, layout);
  return params;
}

absl::Status CheckHostCuSeqlens(const kernels::ForwardParams& params) {
  const int32_t* cu = params.sequence.cu_seqlens;
  if (cu == nullptr) return absl::OkStatus();
  if (cu[0] != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cu_seqlens[0] must be 0, got ", cu[0]));
  }
  for (int64_t i = 0; i < params.batch; ++i) {
    if (cu[i + 1] < cu[i]) {
      return absl::InvalidArgumentError(absl::StrCat(
          "cu_seqlens must be non-decreasing, got cu_seqlens[", i,
          "] = ", cu[i], " > cu_seqlens[", i + 1, "] = ", cu[i + 1]));
    }
  }
  if (cu[params.batch] != params.seq_len) {
    return absl::InvalidArgumentError(
        absl::StrCat("cu_seqlens[", params.batch, "] = ", cu[params.batch],
                     " must equal the total rows ", params.seq_len));
  }
  return absl::OkStatus();
}

}  // namespace dilated
