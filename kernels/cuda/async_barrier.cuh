// File: async_barrier.cuh
//
// Synchronisation between the warpgroups of a warp-specialized kernel
// (sm_90): shared-memory mbarriers that a producer's cp.async or TMA copies
// complete and consumers wait on by phase parity, named barriers that order two
// consumer warpgroups, and warpgroup register reallocation (setmaxnreg).
//
// An mbarrier counts arrivals toward the count it was initialised with; when
// they are all in, its phase completes and its parity flips. A waiter passes
// the parity of the phase it waits for: 0 for the first use of a buffer, 1
// for the second, and so on.

#ifndef KERNELS_CUDA_ASYNC_BARRIER_CUH_
#define KERNELS_CUDA_ASYNC_BARRIER_CUH_

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/wgmma.cuh"

namespace dilated {
namespace kernels {
namespace gpu {

// Initialises the mbarrier at shared address `bar` to expect `count`
// arrivals per phase. One thread calls it; a __syncthreads() must follow
// before any thread uses the barrier.
__device__ __forceinline__ void MbarrierInit(uint32_t bar, int count) {
#if DA_WGMMA_ENABLED
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar),
               "r"(count)
               : "memory");
#endif
}

// Arrives on `bar` (release: this thread's earlier writes are visible to the
// threads its phase completion lets go).
__device__ __forceinline__ void MbarrierArrive(uint32_t bar) {
#if DA_WGMMA_ENABLED
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar)
               : "memory");
#endif
}

// Arrives on `bar` and raises the bytes its current phase waits for by
// `bytes` (the TMA copies that complete it report theirs).
__device__ __forceinline__ void MbarrierArriveExpectBytes(uint32_t bar,
                                                          uint32_t bytes) {
#if DA_WGMMA_ENABLED
  asm volatile(
      "mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar),
      "r"(bytes)
      : "memory");
#endif
}

// Arrives on `bar` once every cp.async this thread has issued so far has
// completed; the arrival counts toward the barrier's initial count.
__device__ __forceinline__ void CpAsyncArriveOnCompletion(uint32_t bar) {
#if DA_WGMMA_ENABLED
  asm volatile(
      "cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(bar)
      : "memory");
#endif
}

// Blocks until the phase of `bar` with parity `parity` has completed
// (acquire: the writes released by its arrivals are visible).
__device__ __forceinline__ void MbarrierWait(uint32_t bar, uint32_t parity) {
#if DA_WGMMA_ENABLED
  asm volatile(
      "{\n"
      ".reg .pred done;\n"
      "WAIT_AGAIN:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra WAIT_AGAIN;\n"
      "}\n" ::"r"(bar),
      "r"(parity)
      : "memory");
#endif
}

// Named barrier `id` (1..15; 0 is __syncthreads) over `threads` threads, a
// multiple of 32: Sync waits for all of them, Arrive counts this warp
// without waiting.
__device__ __forceinline__ void NamedBarrierSync(int id, int threads) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}

__device__ __forceinline__ void NamedBarrierArrive(int id, int threads) {
  asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}

// Sets the registers per thread of the calling warpgroup to kRegisters (a
// multiple of 8 in [24, 256]): Release lowers it and returns the rest to the
// block's pool, Acquire raises it, waiting until the pool has them. Every
// thread of the warpgroup calls it.
template <int kRegisters>
__device__ __forceinline__ void ReleaseRegistersTo() {
#if DA_WGMMA_ENABLED
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(kRegisters));
#endif
}

template <int kRegisters>
__device__ __forceinline__ void AcquireRegistersTo() {
#if DA_WGMMA_ENABLED
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(kRegisters));
#endif
}

}  // namespace gpu
}  // namespace kernels
}  // namespace dilated

#endif  // KERNELS_CUDA_ASYNC_BARRIER_CUH_
