// File: standard_cuda_path.h
//
// The direct algorithm on CUDA tensors: for every group, in chunks of
// (batch, segment, head) problems, gather the selected rows into dense
// buffers, S = scale * Q K^T and O = P V with cuBLAS strided-batched GEMMs
// (float32 accumulation), a softmax kernel in between, and scatter
// (1 / G) * O back; the backward pass likewise (dV, dP, dS, dQ, dK). The
// in-house peer of the fused kernels, and the CUDA backend for float32
// tensors. Everything is queued on `stream`; scratch memory comes from the
// call's workspace allocator on that stream (at most ~1 GiB per chunk, at
// least one problem).
//
// Every sequence layout of the front end runs (docs/ARCHITECTURE.md section
// 1.9) but padding between kept positions of a segment, which is
// Unimplemented; the other layouts read per-problem tables built from the
// call's problem list (attention/improved_cuda_layout.h), whose dense buffers
// are padded to the group's full segment.
//
// REQUIRES for both: params from the attention front end (validated), the
// current device owns the tensors.

#ifndef ATTENTION_STANDARD_CUDA_PATH_H_
#define ATTENTION_STANDARD_CUDA_PATH_H_

#include <cuda_runtime_api.h>

#include "absl/status/status.h"
#include "kernels/dilated_params.h"
#include "memory/allocator.h"

namespace dilated {

// Writes params.out (every element) and, when not null, params.lse.
// Scratch comes from `workspace` (never null).
absl::Status StandardCudaForward(const kernels::ForwardParams& params,
                                 cudaStream_t stream,
                                 memory::Allocator* workspace);

// Writes grad_q, grad_k, grad_v (every element); forward.out and
// forward.lse are not read.
absl::Status StandardCudaBackward(const kernels::BackwardParams& params,
                                  cudaStream_t stream,
                                  memory::Allocator* workspace);

}  // namespace dilated

#endif  // ATTENTION_STANDARD_CUDA_PATH_H_
