// File: bulk_reduce.cuh
//
// Float32 sums into global memory by the tensor memory accelerator (sm_90a):
// a run of floats in shared memory added element by element to a run in
// global memory (cp.reduce.async.bulk ... .add.f32), asynchronously. The
// issuing thread groups its copies (commit) and later waits for a group to
// have read its shared source (before overwriting it) or to have completed.

#ifndef KERNELS_CUDA_BULK_REDUCE_CUH_
#define KERNELS_CUDA_BULK_REDUCE_CUH_

#include <cstdint>

#include "kernels/cuda/wgmma.cuh"

namespace dilated {
namespace kernels {
namespace gpu {

// Starts adding `bytes` bytes of floats at shared address `source` to
// `destination`. Both 16-byte aligned, `bytes` a multiple of 16; the source
// must have been written before a FenceSharedForAsyncProxy.
__device__ __forceinline__ void BulkAddFloats(float* destination,
                                              uint32_t source, int bytes) {
#if DA_WGMMA_ENABLED
  asm volatile(
      "cp.reduce.async.bulk.global.shared::cta.bulk_group.add.f32 [%0], [%1], "
      "%2;\n" ::"l"(destination),
      "r"(source), "r"(bytes)
      : "memory");
#endif
}

// Closes this thread's group of BulkAddFloats started since the last one.
__device__ __forceinline__ void BulkCommitGroup() {
#if DA_WGMMA_ENABLED
  asm volatile("cp.async.bulk.commit_group;\n" ::: "memory");
#endif
}

// Waits until at most kPending of this thread's groups have not yet read
// their shared sources.
template <int kPending>
__device__ __forceinline__ void BulkWaitRead() {
#if DA_WGMMA_ENABLED
  asm volatile("cp.async.bulk.wait_group.read %0;\n" ::"n"(kPending)
               : "memory");
#endif
}

// Waits until at most kPending of this thread's groups are incomplete.
template <int kPending>
__device__ __forceinline__ void BulkWait() {
#if DA_WGMMA_ENABLED
  asm volatile("cp.async.bulk.wait_group %0;\n" ::"n"(kPending) : "memory");
#endif
}

}  // namespace gpu
}  // namespace kernels
}  // namespace dilated

#endif  // KERNELS_CUDA_BULK_REDUCE_CUH_
