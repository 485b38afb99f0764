// File: device_ops.h
//
// The element-wise and row-wise steps of the models on CUDA tensors: bias
// broadcast (the GEMM then accumulates onto it), LayerNorm, ReLU/GELU,
// residual addition and upstream's group-sum normalisation. Tensors are
// row-major and stored as float32, float16 or bfloat16; every kernel computes
// in float32 and rounds once to the storage type, as the CPU path does.
// Parameters (bias, LayerNorm weight and bias) are float32.
//
// Every function queues its work on `stream` and returns the launch error
// (cudaSuccess when queued); none synchronises.
//
//   cudaError_t error = dilated::models::gpu::LayerNormRows(
//       x, rows, 768, weight, bias, 1e-5f, DataType::kFloat16, y, stream);

#ifndef MODELS_CUDA_DEVICE_OPS_H_
#define MODELS_CUDA_DEVICE_OPS_H_

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/dilated_params.h"

namespace dilated {
namespace models {
namespace gpu {

using ::dilated::kernels::DataType;

// Writes bias[c] (rounded to `dtype`), or zero when `bias` is null, into
// every row of the [rows, cols] tensor y.
cudaError_t BroadcastRows(const float* bias, int64_t rows, int64_t cols,
                          DataType dtype, void* y, cudaStream_t stream);

// y[r, :] = (x[r, :] - mean) / sqrt(var + eps) * weight + bias over rows of
// `features` elements (two float32 passes, biased variance). y may be x.
cudaError_t LayerNormRows(const void* x, int64_t rows, int64_t features,
                          const float* weight, const float* bias, float eps,
                          DataType dtype, void* y, cudaStream_t stream);

// x = max(x, 0) (gelu == false) or the exact erf GELU (gelu == true).
cudaError_t Activate(bool gelu, void* x, int64_t count, DataType dtype,
                     cudaStream_t stream);

// x += delta element-wise.
cudaError_t AddInto(const void* delta, void* x, int64_t count, DataType dtype,
                    cudaStream_t stream);

// Divides every (batch, channel) column of the [batch, seq, width] tensor x
// by num_groups times its sum over the sequence (sums in float64).
cudaError_t NormalizeGroupSums(void* x, int64_t batch, int64_t seq,
                               int64_t width, int64_t num_groups,
                               DataType dtype, cudaStream_t stream);

}  // namespace gpu
}  // namespace models
}  // namespace dilated

#endif  // MODELS_CUDA_DEVICE_OPS_H_
