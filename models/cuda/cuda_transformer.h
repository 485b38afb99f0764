// File: cuda_transformer.h
//
// Device-resident copies of the dilated transformer layers and LongNet
// (encoder_layer.h, decoder_layer.h, long_net.h): the same computation on
// CUDA tensors in the model's storage type (float32, float16 or bfloat16)
// with float32 accumulation. Made once from a host model whose parameters
// are loaded (Upload), then run any number of times on any stream of its
// device; one forward pass at a time per model (the layers share one
// LinearProducts).
//
//   absl::StatusOr<std::unique_ptr<CudaLongNet>> gpu_model =
//       CudaLongNet::Upload(*model, DType::kFloat16, /*device=*/0, stream);
//   absl::StatusOr<DeviceTensor> y = (*gpu_model)->Forward(x, true, stream);

#ifndef MODELS_CUDA_CUDA_TRANSFORMER_H_
#define MODELS_CUDA_CUDA_TRANSFORMER_H_

#include <cuda_runtime_api.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "models/cuda/cuda_layers.h"
#include "models/cuda/cuda_multihead.h"
#include "models/cuda/device_tensor.h"
#include "models/decoder_layer.h"
#include "models/encoder_layer.h"
#include "models/long_net.h"

namespace dilated {
namespace models {

// x + linear2(sub_norm(act(linear1(pre_norm(x))))): the activation runs
// inside sub_norm's kernel and the residual in linear2's epilogue.
class CudaFeedForward {
 public:
  static absl::StatusOr<CudaFeedForward> Create(
      const TransformerLayerConfig& config, const ParameterLookup& params,
      const std::string& prefix, const std::string& pre_norm_name,
      const std::string& sub_norm_name, const CudaPlacement& placement,
      cudaStream_t stream);

  absl::StatusOr<DeviceTensor> ForwardResidual(const DeviceTensor& x,
                                               cudaStream_t stream) const;

 private:
  Activation activation_ = Activation::kRelu;
  CudaLayerNorm pre_norm_, sub_norm_;
  CudaLinear linear1_, linear2_;
};

class CudaEncoderLayer {
 public:
  // Returns a copy of `host` in `dtype` on `device` (uploads on `stream`).
  static absl::StatusOr<std::unique_ptr<CudaEncoderLayer>> Upload(
      DilatedTransformerEncoderLayer& host, DType dtype, int device,
      cudaStream_t stream);

  static absl::StatusOr<std::unique_ptr<CudaEncoderLayer>> Create(
      const TransformerLayerConfig& config, const ParameterLookup& params,
      const std::string& prefix, const CudaPlacement& placement,
      cudaStream_t stream);

  // As DilatedTransformerEncoderLayer::Forward, queued on `stream`.
  absl::StatusOr<DeviceTensor> Forward(const DeviceTensor& src, bool is_causal,
                                       cudaStream_t stream);

 private:
  CudaEncoderLayer() = default;

  TransformerLayerConfig config_;
  CudaPlacement placement_;
  CudaLayerNorm norm1_;
  std::unique_ptr<CudaMultiheadAttention> self_attn_;
  CudaFeedForward feed_forward_;
};

class CudaDecoderLayer {
 public:
  static absl::StatusOr<std::unique_ptr<CudaDecoderLayer>> Upload(
      DilatedTransformerDecoderLayer& host, DType dtype, int device,
      cudaStream_t stream);

  static absl::StatusOr<std::unique_ptr<CudaDecoderLayer>> Create(
      const TransformerLayerConfig& config, const ParameterLookup& params,
      const std::string& prefix, const CudaPlacement& placement,
      cudaStream_t stream);

  // As DilatedTransformerDecoderLayer::Forward, queued on `stream`.
  absl::StatusOr<DeviceTensor> Forward(const DeviceTensor& tgt,
                                       const DeviceTensor& memory,
                                       bool tgt_is_causal,
                                       bool memory_is_causal,
                                       cudaStream_t stream);

 private:
  CudaDecoderLayer() = default;

  TransformerLayerConfig config_;
  CudaPlacement placement_;
  CudaLayerNorm norm1_, norm2_;
  std::unique_ptr<CudaMultiheadAttention> self_attn_, multihead_attn_;
  CudaFeedForward feed_forward_;
};

class CudaLongNet {
 public:
  static absl::StatusOr<std::unique_ptr<CudaLongNet>> Upload(
      LongNet& host, DType dtype, int device, cudaStream_t stream);

  // As LongNet::Forward, queued on `stream`.
  absl::StatusOr<DeviceTensor> Forward(const DeviceTensor& x, bool is_causal,
                                       cudaStream_t stream);

  // The timer every layer of the model records its stages on (disabled
  // until enabled; stage_timer.h).
  StageTimer& stage_timer() { return *placement_.stage_timer; }

 private:
  CudaLongNet() = default;

  LongNetConfig config_;
  CudaPlacement placement_;
  std::vector<std::unique_ptr<CudaEncoderLayer>> encoder_;
  std::vector<std::unique_ptr<CudaDecoderLayer>> decoder_;
};

}  // namespace models
}  // namespace dilated

#endif  // MODELS_CUDA_CUDA_TRANSFORMER_H_
