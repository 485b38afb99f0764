// The CUDA backend of "improved": the fused strided flash-attention kernels
// (kernels/cuda/flash_attention.h) on the context's device and stream.
//
// The fused kernels take float16 and bfloat16 tensors with head_dim a
// multiple of 8 up to 256, 16-byte aligned data and strides that are
// multiples of 8 elements, in every sequence layout of the contract: whole
// or partial segments, packed input (cu_seqlens) and key padding at the
// start or end of each problem's selection (improved_cuda_layout.h). The
// backend refuses other dtypes and shapes (Supports), so that "auto" picks
// another backend (the unfused "standard" path for float32) and a caller who
// asked for "improved" by name learns why it cannot run. Padding between
// kept positions of a segment is only known once the mask has been read, so
// Forward and Backward refuse it (Unimplemented) rather than Supports.

#include <cuda_runtime_api.h>

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "attention/backend_registry.h"
#include "attention/cuda_scratch.h"
#include "attention/improved_cuda_layout.h"
#include "base/cuda_util.h"
#include "factory/status_macros.h"
#include "kernels/cuda/flash_attention.h"

namespace dilated {
namespace {

absl::Status Refuse(absl::string_view what) {
  return absl::UnimplementedError(
      absl::StrCat("'improved' cannot run on CUDA: ", what));
}

absl::Status ImprovedSupportsCuda(const kernels::ForwardParams& p,
                                  const kernels::BackwardParams* backward) {
  DA_RETURN_IF_ERROR(RequireQueryKeyGeometry("improved", p));
  if (!kernels::gpu::FlashSupports(p.dtype, p.head_dim)) {
    return Refuse(
        absl::StrCat("the fused kernels take float16 or bfloat16 "
                     "with head_dim a multiple of 8 up to 256, got ",
                     DTypeName(p.dtype), " with head_dim ", p.head_dim));
  }
  if (!kernels::gpu::FlashTensorsAligned(p, backward)) {
    return Refuse(
        "the fused kernels need 16-byte aligned tensors with strides that "
        "are multiples of 8 elements");
  }
  return absl::OkStatus();
}

absl::Status ImprovedForwardCuda(const kernels::ForwardParams& params,
                                 const ExecutionContext& context) {
  ScopedCudaDevice device(context.device.index);
  DA_RETURN_IF_ERROR(device.status());
  const auto stream = static_cast<cudaStream_t>(context.stream);
  DA_ASSIGN_OR_RETURN(FlashCallLayout layout,
                      FlashCallLayout::Make(params, stream, context.workspace));
  return CudaStatus(
      kernels::gpu::FlashForward(params, layout.problems(), stream),
      "fused forward kernel");
}

absl::Status ImprovedBackwardCuda(const kernels::BackwardParams& params,
                                  const ExecutionContext& context) {
  ScopedCudaDevice device(context.device.index);
  DA_RETURN_IF_ERROR(device.status());
  const auto stream = static_cast<cudaStream_t>(context.stream);
  DA_ASSIGN_OR_RETURN(
      FlashCallLayout layout,
      FlashCallLayout::Make(params.forward, stream, context.workspace));
  DA_ASSIGN_OR_RETURN(
      CudaScratch delta,
      CudaScratch::Allocate(kernels::gpu::FlashBackwardWorkspaceBytes(params),
                            stream, context.workspace));
  return CudaStatus(kernels::gpu::FlashBackward(params, layout.problems(),
                                                delta.data(), stream),
                    "fused backward kernels");
}

}  // namespace

DA_REGISTER_BACKEND("improved", DeviceType::kCuda,
                    (Backend{&ImprovedForwardCuda, &ImprovedBackwardCuda,
                             &ImprovedSupportsCuda,
                             /*priority=*/10,
                             /*backward_reads_forward_lse=*/true}));

}  // namespace dilated
