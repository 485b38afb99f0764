// The CUDA backend of "improved": the fused strided flash-attention kernels
// (kernels/cuda/flash_attention.h) on the context's device and stream.
//
// The fused kernels take float16 and bfloat16 tensors with head_dim a
// multiple of 8 up to 256, 16-byte aligned data and strides that are
// multiples of 8 elements. Anything else the front end accepts (float32
// tensors above all, also odd head_dim or unaligned views) runs on the
// unfused path of "standard" (standard_cuda_path.h): same function, same
// outputs, gather/GEMM/scatter speed and scratch memory.

#include <cuda_runtime_api.h>

#include <cstdint>

#include "absl/status/status.h"
#include "attention/backend_registry.h"
#include "attention/cuda_util.h"
#include "attention/standard_cuda_path.h"
#include "factory/status_macros.h"
#include "kernels/cuda/flash_attention.h"

namespace dilated {
namespace {

// Returns whether every row of `t` starts on a 16-byte boundary.
bool RowsAligned(const kernels::TensorParams& t) {
  constexpr int64_t kVector = 8;  // 16-byte vectors of 2-byte elements
  return reinterpret_cast<uintptr_t>(t.data) % 16 == 0 &&
         t.stride_b % kVector == 0 && t.stride_n % kVector == 0 &&
         t.stride_h % kVector == 0;
}

bool FusedForward(const kernels::ForwardParams& p) {
  return kernels::gpu::FlashSupports(p.dtype, p.head_dim) && RowsAligned(p.q) &&
         RowsAligned(p.k) && RowsAligned(p.v) && RowsAligned(p.out);
}

bool FusedBackward(const kernels::BackwardParams& p) {
  return FusedForward(p.forward) && RowsAligned(p.grad_out) &&
         RowsAligned(p.grad_q) && RowsAligned(p.grad_k) &&
         RowsAligned(p.grad_v);
}

absl::Status ImprovedForwardCuda(const kernels::ForwardParams& params,
                                 const ExecutionContext& context) {
  ScopedCudaDevice device(context.device.index);
  DA_RETURN_IF_ERROR(device.status());
  const auto stream = static_cast<cudaStream_t>(context.stream);
  if (!FusedForward(params)) {
    return StandardCudaForward(params, stream, context.workspace);
  }
  return CudaStatus(kernels::gpu::FlashForward(params, stream),
                    "fused forward kernel");
}

absl::Status ImprovedBackwardCuda(const kernels::BackwardParams& params,
                                  const ExecutionContext& context) {
  ScopedCudaDevice device(context.device.index);
  DA_RETURN_IF_ERROR(device.status());
  const auto stream = static_cast<cudaStream_t>(context.stream);
  if (!FusedBackward(params)) {
    return StandardCudaBackward(params, stream, context.workspace);
  }
  DA_ASSIGN_OR_RETURN(
      CudaScratch delta,
      CudaScratch::Allocate(kernels::gpu::FlashBackwardWorkspaceBytes(params),
                            stream, context.workspace));
  return CudaStatus(kernels::gpu::FlashBackward(params, delta.data(), stream),
                    "fused backward kernels");
}

}  // namespace

DA_REGISTER_BACKEND("improved", DeviceType::kCuda,
                    (Backend{&ImprovedForwardCuda, &ImprovedBackwardCuda,
                             /*priority=*/10}));

}  // namespace dilated
