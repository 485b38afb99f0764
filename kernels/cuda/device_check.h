// File: device_check.h
//
// A trivial CUDA kernel that proves the nvcc -> cc_library -> test path end to
// end: it scales a float array on a stream.

#ifndef KERNELS_CUDA_DEVICE_CHECK_H_
#define KERNELS_CUDA_DEVICE_CHECK_H_

#include <cstdint>

#include "cuda_runtime.h"

namespace dilated {
namespace kernels {
namespace cuda {

// Multiplies data[0 .. count) by `factor` on `stream`, asynchronously.
cudaError_t ScaleOnDevice(float* data, int64_t count, float factor,
                          cudaStream_t stream);

}  // namespace cuda
}  // namespace kernels
}  // namespace dilated

#endif  // KERNELS_CUDA_DEVICE_CHECK_H_
