// The CUDA kernels of "block_sparse": each call copies the cached host lists
// of active blocks into stream-ordered scratch (a few int32 per block pair)
// and runs, on the call's stream, the fused tensor-core kernels
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
#include "attention/block_sparse_device.h"
#include "attention/cuda_scratch.h"
#include "base/cuda_util.h"
#include "factory/status_macros.h"
#include "kernels/cuda/block_sparse_attention.h"
#include "kernels/cuda/flash_attention.h"

namespace dilated {
namespace {

// The lists in device scratch, alive while the object lives.
struct DeviceLists {
  CudaScratch memory;
  kernels::BlockLists lists;
};

absl::StatusOr<DeviceLists> Upload(const kernels::BlockLists& host,
                                   cudaStream_t stream,
                                   memory::Allocator* allocator) {
  const int64_t begins = host.heads * host.num_blocks + 1;
  const int64_t entries = host.row_begin[begins - 1];
  const int64_t total = 2 * begins + 2 * entries;
  DA_ASSIGN_OR_RETURN(
      CudaScratch memory,
      CudaScratch::Allocate(total * sizeof(int32_t), stream, allocator));
  int32_t* base = static_cast<int32_t*>(memory.data());
  const std::pair<const int32_t*, int64_t> pieces[] = {
      {host.row_begin, begins},
      {host.row_blocks, entries},
      {host.column_begin, begins},
      {host.column_blocks, entries}};
  kernels::BlockLists device = host;
  const int32_t** targets[] = {&device.row_begin, &device.row_blocks,
                               &device.column_begin, &device.column_blocks};
  int64_t offset = 0;
  for (int i = 0; i < 4; ++i) {
    *targets[i] = base + offset;
    if (pieces[i].second > 0) {
      DA_RETURN_IF_ERROR(
          CudaStatus(cudaMemcpyAsync(base + offset, pieces[i].first,
                                     pieces[i].second * sizeof(int32_t),
                                     cudaMemcpyHostToDevice, stream),
                     "block list upload"));
    }
    offset += pieces[i].second;
  }
  return DeviceLists{std::move(memory), device};
}

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
                         const kernels::BlockLists& host_lists,
                         const ExecutionContext& context) {
  DA_RETURN_IF_ERROR(CheckHeadDim(params));
  ScopedCudaDevice device(context.device.index);
  DA_RETURN_IF_ERROR(device.status());
  const auto stream = static_cast<cudaStream_t>(context.stream);
  DA_ASSIGN_OR_RETURN(DeviceLists lists,
                      Upload(host_lists, stream, context.workspace));
  if (UsesFusedKernels(params, nullptr, host_lists)) {
    return CudaStatus(
        kernels::gpu::FlashBlockSparseForward(params, lists.lists, stream),
        "fused block-sparse forward kernel");
  }
  return CudaStatus(
      kernels::gpu::BlockSparseForwardCuda(params, lists.lists, stream),
      "block-sparse forward kernel");
}

absl::Status BackwardCuda(const kernels::BackwardParams& params,
                          const kernels::BlockLists& host_lists,
                          const ExecutionContext& context) {
  DA_RETURN_IF_ERROR(CheckHeadDim(params.forward));
  ScopedCudaDevice device(context.device.index);
  DA_RETURN_IF_ERROR(device.status());
  const auto stream = static_cast<cudaStream_t>(context.stream);
  DA_ASSIGN_OR_RETURN(DeviceLists lists,
                      Upload(host_lists, stream, context.workspace));
  if (UsesFusedKernels(params.forward, &params, host_lists)) {
    DA_ASSIGN_OR_RETURN(
        CudaScratch delta,
        CudaScratch::Allocate(kernels::gpu::FlashBackwardWorkspaceBytes(params),
                              stream, context.workspace));
    return CudaStatus(kernels::gpu::FlashBlockSparseBackward(
                          params, lists.lists, delta.data(), stream),
                      "fused block-sparse backward kernels");
  }
  DA_ASSIGN_OR_RETURN(
      CudaScratch delta,
      CudaScratch::Allocate(
          kernels::gpu::BlockSparseBackwardWorkspaceBytes(params.forward),
          stream, context.workspace));
  return CudaStatus(
      kernels::gpu::BlockSparseBackwardCuda(
          params, lists.lists, static_cast<float*>(delta.data()), stream),
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
