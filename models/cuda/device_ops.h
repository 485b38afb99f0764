// File: device_ops.h
//
// The row-wise steps of the models on CUDA tensors that cuBLAS does not fuse
// into its products: LayerNorm (optionally after a ReLU or GELU of its input,
// so the feed-forward activation costs no pass of its own) and upstream's
// group-sum normalisation. Tensors are row-major and stored as float32,
// float16 or bfloat16; every kernel computes in float32 and rounds once to
// the storage type, as the CPU path does. Parameters (LayerNorm weight and
// bias) are float32.
//
// Every function queues its work on `stream` and returns the launch error
// (cudaSuccess when queued); none synchronises.
//
//   LayerNormArgs args;
//   args.x = x; args.y = y; args.rows = rows; args.features = 768;
//   args.x_row_stride = args.y_row_stride = 768;
//   args.weight = weight; args.bias = bias; args.dtype = DataType::kFloat16;
//   cudaError_t error = dilated::models::gpu::LayerNormRows(args, stream);

#ifndef MODELS_CUDA_DEVICE_OPS_H_
#define MODELS_CUDA_DEVICE_OPS_H_

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/dilated_params.h"

namespace dilated {
namespace models {
namespace gpu {

using ::dilated::kernels::DataType;

// What LayerNormRows applies to every input element before normalising.
enum class RowActivation { kNone, kRelu, kGelu };

// y[r, :] = (a[r, :] - mean) / sqrt(var + eps) * weight + bias, where
// a = activation(x[r, :]) over `features` elements, mean and biased
// variance in float32. Row r of x starts at element r * x_row_stride, of y
// at r * y_row_stride (a column range of a wider tensor is a row-strided
// view); y may be x.
struct LayerNormArgs {
  const void* x = nullptr;
  int64_t x_row_stride = 0;
  void* y = nullptr;
  int64_t y_row_stride = 0;
  int64_t rows = 0;
  int64_t features = 0;
  const float* weight = nullptr;
  const float* bias = nullptr;
  float eps = 1e-5f;
  RowActivation activation = RowActivation::kNone;
  DataType dtype = DataType::kFloat32;
};

// Aligned rows of 16-byte vectors are read once into registers: one warp per
// row up to 1024 float16 or 512 float32 features, 128 threads per row up to
// 8192 float16 or 4096 float32; other rows take one block each and are read
// three times.
cudaError_t LayerNormRows(const LayerNormArgs& args, cudaStream_t stream);

// Divides every (batch, channel) column of the [batch, seq, width] tensor x
// by num_groups times its sum over the sequence (sums in float64).
cudaError_t NormalizeGroupSums(void* x, int64_t batch, int64_t seq,
                               int64_t width, int64_t num_groups,
                               DataType dtype, cudaStream_t stream);

}  // namespace gpu
}  // namespace models
}  // namespace dilated

#endif  // MODELS_CUDA_DEVICE_OPS_H_
