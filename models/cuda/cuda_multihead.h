// File: cuda_multihead.h
//
// CudaMultiheadAttention: a device-resident copy of a multihead dilated
// attention module (multihead_attention.h), either the separate-projection
// MultiheadDilatedAttention (fork or upstream variant) or the fused-qkv
// FusedMultiheadDilatedAttention, computing what the host module computes
// on CUDA tensors: projections through cuBLASLt, LayerNorms and the group-sum
// step as CUDA kernels, the attention core from the attention factory on the
// tensors' device and the caller's stream (the config's attention_core, or
// DefaultCudaAttentionCoreName() when it is empty).
//
//   absl::StatusOr<std::unique_ptr<CudaMultiheadAttention>> mha =
//       CudaMultiheadAttention::Upload(*host, DType::kFloat16, 0, stream);
//   absl::StatusOr<DeviceTensor> y = (*mha)->Forward(x, x, x, true, stream);

#ifndef MODELS_CUDA_CUDA_MULTIHEAD_H_
#define MODELS_CUDA_CUDA_MULTIHEAD_H_

#include <cuda_runtime_api.h>

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "attention/attention.h"
#include "models/cuda/cuda_layers.h"
#include "models/cuda/device_tensor.h"
#include "models/multihead_attention.h"

namespace dilated {
namespace models {

class CudaMultiheadAttention {
 public:
  // Returns a copy of `host` with weights and activations in `dtype` on
  // `device`; the uploads are queued on `stream`.
  static absl::StatusOr<std::unique_ptr<CudaMultiheadAttention>> Upload(
      MultiheadAttention& host, DType dtype, int device, cudaStream_t stream);

  // Returns the module with `config` whose parameters are those named
  // `prefix` + state-dict name in `params`; `fused` for the fused-qkv module.
  static absl::StatusOr<std::unique_ptr<CudaMultiheadAttention>> Create(
      const MultiheadConfig& config, bool fused, const ParameterLookup& params,
      const std::string& prefix, const CudaPlacement& placement,
      cudaStream_t stream);

  // As MultiheadAttention::Forward on device tensors, queued on `stream`,
  // plus `residual` (the output's shape) when it is not null, added in the
  // output projection's epilogue. Key and value that are query's tensor (by
  // address) are projected with it in one product, a value that is key's
  // tensor with the key. InvalidArgument for shapes, dtypes or devices that
  // do not fit.
  absl::StatusOr<DeviceTensor> Forward(const DeviceTensor& query,
                                       const DeviceTensor& key,
                                       const DeviceTensor& value,
                                       bool is_causal, cudaStream_t stream,
                                       const DeviceTensor* residual = nullptr);

  // Self-attention.
  absl::StatusOr<DeviceTensor> Forward(const DeviceTensor& x, bool is_causal,
                                       cudaStream_t stream,
                                       const DeviceTensor* residual = nullptr) {
    return Forward(x, x, x, is_causal, stream, residual);
  }

  const MultiheadConfig& config() const { return config_; }

 private:
  CudaMultiheadAttention() = default;

  // The core's attention of the heads in the column ranges of q, k, v.
  absl::StatusOr<DeviceTensor> Attend(const DeviceTensor& q, int64_t q_column,
                                      const DeviceTensor& k, int64_t k_column,
                                      const DeviceTensor& v, int64_t v_column,
                                      bool is_causal, cudaStream_t stream);

  MultiheadConfig config_;
  CudaPlacement placement_;
  // Whether q_ln_ and k_ln_ normalise the projected queries and keys (the
  // fork's QK-LayerNorm); the fused module applies q_ln_ to the attention
  // output only.
  bool qk_norms_ = false;
  std::unique_ptr<Attention> core_;
  // The q, k and v projections stacked: outputs [0, e), [e, 2e), [2e, 3e).
  CudaLinear qkv_proj_;
  CudaLinear out_proj_;
  std::optional<CudaLayerNorm> q_ln_, k_ln_, norm_;
};

// Returns the attention core used on CUDA when the config names none: "auto"
// when registered (the highest-priority CUDA backend, the fused kernels of
// "improved"), else DefaultAttentionCoreName().
std::string DefaultCudaAttentionCoreName();

// Returns InvalidArgument naming `name` unless `t` is a [batch, seq,
// d_model] tensor of `dtype` on `device` with a positive batch and a
// sequence length that is a multiple of every segment length.
absl::Status CheckDeviceInput(const char* name, const DeviceTensor& t,
                              int64_t d_model, DType dtype, int device,
                              const std::vector<int64_t>& segment_lengths);

}  // namespace models
}  // namespace dilated

#endif  // MODELS_CUDA_CUDA_MULTIHEAD_H_
