// The CUDA kernels of "block_sparse": the lists of active blocks of a layout
// are copied to the device once (a few int32 per block pair, kept with the
// cached host lists, BlockListStorage::CopyFor), and each call runs, on its
// stream, the fused tensor-core kernels
// (kernels/cuda/flash_attention.h, FlashBlockSparse*) where they apply:
// float16 or bfloat16 with a fused head_dim, 16-byte aligned rows, a block
// size that is a multiple of 128 and no key padding mask. Other calls run on
// the warp-per-row kernels (kernels/cuda/block_sparse_attention.h), which
// take every dtype, block size and mask.

#include <cuda_runtime_api.h>

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "attention/block_lists_cuda.h"
#include "attention/block_sparse_device.h"
#include "attention/cuda_scratch.h"
#include "base/cuda_util.h"
#include "factory/status_macros.h"
#include "kernels/cuda/block_sparse_attention.h"
#include "kernels/cuda/flash_attention.h"

namespace dilated {
namespace {

absl::Status CheckHeadDim(const kernels::ForwardParams& p) {
  if (p.head_dim > kernels::gpu::kBlockSparseMaxHeadDim) {
    return absl::UnimplementedError(absl::StrCat(
        "'block_sparse' on CUDA takes head_dim up to ",
        kernels::gpu::kBlockSparseMaxHeadDim, ", got ", p.head_dim));
  }
  return absl::OkStatus();
}

// Returns whether the fused kernels run this call (see the file comment).
bool UsesFusedKernels(const kernels::ForwardParams& p,
                      const kernels::BackwardParams* backward,
                      const kernels::BlockLists& lists) {
  return kernels::gpu::FlashSupports(p.dtype, p.head_dim) &&
         kernels::gpu::FlashTensorsAligned(p, backward) &&
         lists.block_size % kernels::gpu::kFlashBlockSparseBlockMultiple == 0 &&
         p.sequence.key_padding_mask == nullptr && !p.dropout.enabled;
}

absl::Status ForwardCuda(const kernels::ForwardParams& params,
                         const BlockListStorage& storage,
                         const ExecutionContext& context) {
  DA_RETURN_IF_ERROR(CheckHeadDim(params));
  ScopedCudaDevice device(context.device.index);
  DA_RETURN_IF_ERROR(device.status());
  const auto stream = static_cast<cudaStream_t>(context.stream);
  DA_ASSIGN_OR_RETURN(const kernels::BlockLists lists,
                      DeviceBlockLists(storage, context.device.index));
  if (UsesFusedKernels(params, nullptr, lists)) {
    return CudaStatus(
        kernels::gpu::FlashBlockSparseForward(params, lists, stream),
        "fused block-sparse forward kernel");
  }
  return CudaStatus(kernels::gpu::BlockSparseForwardCuda(params, lists, stream),
                    "block-sparse forward kernel");
}

absl::Status BackwardCuda(const kernels::BackwardParams& params,
                          const BlockListStorage& storage,
                          const ExecutionContext& context) {
  DA_RETURN_IF_ERROR(CheckHeadDim(params.forward));
  ScopedCudaDevice device(context.device.index);
  DA_RETURN_IF_ERROR(device.status());
  const auto stream = static_cast<cudaStream_t>(context.stream);
  DA_ASSIGN_OR_RETURN(const kernels::BlockLists lists,
                      DeviceBlockLists(storage, context.device.index));
  const bool fused = UsesFusedKernels(params.forward, &params, lists);
  DA_ASSIGN_OR_RETURN(
      CudaScratch delta,
      CudaScratch::Allocate(
          fused
              ? kernels::gpu::FlashBackwardWorkspaceBytes(params)
              : kernels::gpu::BlockSparseBackwardWorkspaceBytes(params.forward),
          stream, context.workspace));
  if (fused) {
    return CudaStatus(kernels::gpu::FlashBlockSparseBackward(
                          params, lists, delta.data(), stream),
                      "fused block-sparse backward kernels");
  }
  return CudaStatus(
      kernels::gpu::BlockSparseBackwardCuda(
          params, lists, static_cast<float*>(delta.data()), stream),
      "block-sparse backward kernels");
}

absl::StatusOr<std::vector<int32_t>> ReadCuSeqlensCuda(
    const kernels::ForwardParams& params, const ExecutionContext& context) {
  ScopedCudaDevice device(context.device.index);
  DA_RETURN_IF_ERROR(device.status());
  const auto stream = static_cast<cudaStream_t>(context.stream);
  std::vector<int32_t> host(params.batch + 1);
  // cudaMemcpyDefault: the offsets may be in device or in host memory.
  DA_RETURN_IF_ERROR(CudaStatus(
      cudaMemcpyAsync(host.data(), params.sequence.cu_seqlens,
                      host.size() * sizeof(int32_t), cudaMemcpyDefault, stream),
      "copying cu_seqlens to the host"));
  DA_RETURN_IF_ERROR(
      CudaStatus(cudaStreamSynchronize(stream), "reading cu_seqlens"));
  return host;
}

}  // namespace

DA_REGISTER_DEVICE_KERNELS(BlockSparseDeviceKernels, DeviceType::kCuda,
                           (BlockSparseDeviceKernels{&ForwardCuda,
                                                     &BackwardCuda,
                                                     &ReadCuSeqlensCuda}));

}  // namespace dilated
