#include "kernels/cuda/device_check.h"

namespace dilated {
namespace kernels {
namespace cuda {
namespace {

__global__ void ScaleKernel(float* data, int64_t count, float factor) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < count) data[i] *= factor;
}

}  // namespace

cudaError_t ScaleOnDevice(float* data, int64_t count, float factor,
                          cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  constexpr int kThreads = 256;
  const int64_t blocks = (count + kThreads - 1) / kThreads;
  ScaleKernel<<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(
      data, count, factor);
  return cudaGetLastError();
}

}  // namespace cuda
}  // namespace kernels
}  // namespace dilated
