// The CUDA kernels of "longnet": every branch on the fused kernels of
// "improved" (kernels/cuda/flash_attention.h) into stream-ordered scratch,
// then the merge by lse (kernels/cuda/longnet_merge.h); backward runs each
// branch's fused backward with the merged out and lse and sums the branches'
// gradients in float32. Like "improved" on CUDA, it takes float16 and
// bfloat16 with head_dim a multiple of 8 up to 256 and 16-byte aligned rows
// (Unimplemented otherwise).

#include <cuda_runtime_api.h>

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "attention/cuda_scratch.h"
#include "attention/improved_cuda_layout.h"
#include "attention/longnet_device.h"
#include "base/cuda_util.h"
#include "factory/status_macros.h"
#include "kernels/cuda/flash_attention.h"
#include "kernels/cuda/longnet_merge.h"

namespace dilated {
namespace {

using kernels::BackwardParams;
using kernels::ForwardParams;
using kernels::TensorParams;

// Returns whether every row of `t` starts on a 16-byte boundary.
bool RowsAligned(const TensorParams& t) {
  constexpr int64_t kVector = 8;  // 16-byte vectors of 2-byte elements
  return reinterpret_cast<uintptr_t>(t.data) % 16 == 0 &&
         t.stride_b % kVector == 0 && t.stride_n % kVector == 0 &&
         t.stride_h % kVector == 0;
}

absl::Status CheckSupported(const ForwardParams& p,
                            std::initializer_list<TensorParams> tensors) {
  if (!kernels::gpu::FlashSupports(p.dtype, p.head_dim)) {
    return absl::UnimplementedError(absl::StrCat(
        "'longnet' on CUDA runs the fused kernels: float16 or bfloat16 with "
        "head_dim a multiple of 8 up to 256, got ",
        p.dtype == kernels::DataType::kFloat32 ? "float32" : "16-bit",
        " with head_dim ", p.head_dim));
  }
  for (const TensorParams& t : tensors) {
    if (!RowsAligned(t)) {
      return absl::UnimplementedError(
          "'longnet' on CUDA needs 16-byte aligned tensors with strides that "
          "are multiples of 8 elements");
    }
  }
  return absl::OkStatus();
}

// `count` contiguous tensors like q (and, with lse, `count` lse arrays
// [storage batch, heads, seq]) in one piece of stream-ordered scratch.
struct Buffers {
  CudaScratch memory;
  std::vector<TensorParams> tensors;
  std::vector<float*> lse;
};

absl::StatusOr<Buffers> AllocateBuffers(const ForwardParams& p, int count,
                                        bool with_lse, cudaStream_t stream,
                                        memory::Allocator* allocator) {
  const int64_t rows = kernels::StorageBatch(p) * p.seq_len;
  const int64_t element = p.dtype == kernels::DataType::kFloat32 ? 4 : 2;
  // 256-byte steps keep every piece aligned for the fused kernels.
  const int64_t tensor_bytes =
      (rows * p.num_heads * p.head_dim * element + 255) / 256 * 256;
  const int64_t lse_bytes =
      with_lse ? (rows * p.num_heads * 4 + 255) / 256 * 256 : 0;
  DA_ASSIGN_OR_RETURN(CudaScratch memory,
                      CudaScratch::Allocate(count * (tensor_bytes + lse_bytes),
                                            stream, allocator));
  Buffers buffers{std::move(memory), {}, {}};
  char* next = static_cast<char*>(buffers.memory.data());
  const int64_t row = p.num_heads * p.head_dim;
  for (int i = 0; i < count; ++i) {
    buffers.tensors.push_back(TensorParams{
        next, kernels::IsPacked(p) ? 0 : p.seq_len * row, row, p.head_dim});
    next += tensor_bytes;
  }
  for (int i = 0; with_lse && i < count; ++i) {
    buffers.lse.push_back(reinterpret_cast<float*>(next));
    next += lse_bytes;
  }
  return buffers;
}

absl::Status ForwardCuda(const ForwardParams& params,
                         const std::vector<ForwardParams>& branches,
                         const ExecutionContext& context) {
  DA_RETURN_IF_ERROR(
      CheckSupported(params, {params.q, params.k, params.v, params.out}));
  ScopedCudaDevice device(context.device.index);
  DA_RETURN_IF_ERROR(device.status());
  const auto stream = static_cast<cudaStream_t>(context.stream);
  const int count = static_cast<int>(branches.size());
  DA_ASSIGN_OR_RETURN(Buffers buffers,
                      AllocateBuffers(params, count, /*with_lse=*/true, stream,
                                      context.workspace));
  kernels::LongNetBranchOutputs outputs{};
  outputs.count = count;
  outputs.lse_stride_b =
      kernels::IsPacked(params) ? 0 : params.num_heads * params.seq_len;
  outputs.lse_stride_h = params.seq_len;
  for (int i = 0; i < count; ++i) {
    ForwardParams branch = branches[i];
    branch.out = buffers.tensors[i];
    branch.lse = buffers.lse[i];
    branch.lse_stride_b = outputs.lse_stride_b;
    branch.lse_stride_h = outputs.lse_stride_h;
    DA_ASSIGN_OR_RETURN(
        FlashCallLayout layout,
        FlashCallLayout::Make(branch, stream, context.workspace));
    DA_RETURN_IF_ERROR(CudaStatus(
        kernels::gpu::FlashForward(branch, layout.problems(), stream),
        "longnet branch forward"));
    outputs.out[i] = buffers.tensors[i];
    outputs.lse[i] = buffers.lse[i];
  }
  return CudaStatus(kernels::gpu::LongNetMerge(params, outputs, stream),
                    "longnet merge");
}

absl::Status BranchBackward(const BackwardParams& branch, cudaStream_t stream,
                            memory::Allocator* workspace) {
  DA_ASSIGN_OR_RETURN(FlashCallLayout layout,
                      FlashCallLayout::Make(branch.forward, stream, workspace));
  DA_ASSIGN_OR_RETURN(
      CudaScratch delta,
      CudaScratch::Allocate(kernels::gpu::FlashBackwardWorkspaceBytes(branch),
                            stream, workspace));
  return CudaStatus(kernels::gpu::FlashBackward(branch, layout.problems(),
                                                delta.data(), stream),
                    "longnet branch backward");
}

absl::Status BackwardCuda(const BackwardParams& params,
                          const std::vector<ForwardParams>& branches,
                          const ExecutionContext& context) {
  const ForwardParams& fp = params.forward;
  DA_RETURN_IF_ERROR(
      CheckSupported(fp, {fp.q, fp.k, fp.v, fp.out, params.grad_out,
                          params.grad_q, params.grad_k, params.grad_v}));
  ScopedCudaDevice device(context.device.index);
  DA_RETURN_IF_ERROR(device.status());
  const auto stream = static_cast<cudaStream_t>(context.stream);
  if (branches.size() == 1) {
    BackwardParams branch = params;
    branch.forward = branches[0];
    return BranchBackward(branch, stream, context.workspace);
  }
  const int64_t elements =
      kernels::StorageBatch(fp) * fp.seq_len * fp.num_heads * fp.head_dim;
  DA_ASSIGN_OR_RETURN(
      Buffers gradients,
      AllocateBuffers(fp, 3, /*with_lse=*/false, stream, context.workspace));
  DA_ASSIGN_OR_RETURN(CudaScratch sums,
                      CudaScratch::Allocate(3 * elements * sizeof(float),
                                            stream, context.workspace));
  float* sum = static_cast<float*>(sums.data());
  DA_RETURN_IF_ERROR(
      CudaStatus(cudaMemsetAsync(sum, 0, 3 * elements * sizeof(float), stream),
                 "longnet gradient sums"));
  for (const ForwardParams& forward : branches) {
    BackwardParams branch = params;
    branch.forward = forward;
    branch.grad_q = gradients.tensors[0];
    branch.grad_k = gradients.tensors[1];
    branch.grad_v = gradients.tensors[2];
    DA_RETURN_IF_ERROR(BranchBackward(branch, stream, context.workspace));
    for (int t = 0; t < 3; ++t) {
      DA_RETURN_IF_ERROR(
          CudaStatus(kernels::gpu::LongNetAccumulate(
                         fp, gradients.tensors[t], sum + t * elements, stream),
                     "longnet gradient sum"));
    }
  }
  const TensorParams targets[] = {params.grad_q, params.grad_k, params.grad_v};
  for (int t = 0; t < 3; ++t) {
    DA_RETURN_IF_ERROR(CudaStatus(
        kernels::gpu::LongNetStore(fp, sum + t * elements, targets[t], stream),
        "longnet gradient store"));
  }
  return absl::OkStatus();
}

}  // namespace

DA_REGISTER_DEVICE_KERNELS(LongNetDeviceKernels, DeviceType::kCuda,
                           (LongNetDeviceKernels{&ForwardCuda, &BackwardCuda}));

}  // namespace dilated
