// File: cuda_tile_sweep_kernels.h
//
// Alternative tile shapes of the fused kernels, compiled side by side so
// that one run on the GPU machine can time them against each other
// (cuda_tile_sweep.cc). The shapes the library ships are in
// kernels/cuda/flash_configs.cuh.

#ifndef BENCHMARKS_CUDA_TILE_SWEEP_KERNELS_H_
#define BENCHMARKS_CUDA_TILE_SWEEP_KERNELS_H_

#include <cuda_runtime_api.h>

#include "kernels/block_sparse_params.h"
#include "kernels/dilated_params.h"

namespace dilated {
namespace sweep {

struct ForwardVariant {
  const char* name;
  int head_dim;
  cudaError_t (*run)(const kernels::ForwardParams&, cudaStream_t);
  int (*blocks_per_sm)();  // resident blocks per SM; 0 where it cannot run
};

// One backward kernel (key/value or query side); `delta` already computed.
struct BackwardVariant {
  const char* name;
  int head_dim;
  cudaError_t (*run)(const kernels::BackwardParams&, float* delta,
                     cudaStream_t);
  int (*blocks_per_sm)();  // resident blocks per SM; 0 where it cannot run
};

// A forward kernel walking the active blocks of a block-sparse layout: its
// row tiles (64 or 128 rows) lie inside one 128-row layout block
// (kernels/tile_walk.h). `lists` point to device memory.
struct SparseForwardVariant {
  const char* name;
  int head_dim;
  cudaError_t (*run)(const kernels::ForwardParams&,
                     const kernels::BlockLists& lists, cudaStream_t);
  int (*blocks_per_sm)();  // resident blocks per SM; 0 where it cannot run
};

extern const ForwardVariant kForwardVariants[];
extern const int kNumForwardVariants;
extern const SparseForwardVariant kSparseForwardVariants[];
extern const int kNumSparseForwardVariants;
extern const BackwardVariant kBackwardVariants[];
extern const int kNumBackwardVariants;

// Returns the largest |a[i] - b[i]| over `n` float16 values in device
// memory (infinity where either is NaN), or a negative value on a CUDA
// error.
float MaxAbsDifference(const void* a, const void* b, int64_t n);

// Computes rowsum(grad_out * out) into `delta` (float16 tensors).
cudaError_t RunDelta(const kernels::BackwardParams& params, float* delta,
                     cudaStream_t stream);

}  // namespace sweep
}  // namespace dilated

#endif  // BENCHMARKS_CUDA_TILE_SWEEP_KERNELS_H_
