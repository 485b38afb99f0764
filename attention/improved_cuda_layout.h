// File: improved_cuda_layout.h
//
// How the CUDA backend of "improved" lays out the work of one call for the
// fused kernels (kernels/cuda/flash_attention.h). Fixed-length input whose
// segments divide the sequence, without a key padding mask, takes the
// kernels' closed form: nothing to prepare. Anything else the kernels can
// run (partial segments, packed input, padding at either end of each
// problem's selection) takes the problem list: the host builds the
// ProblemList (kernels/problem_list.h) from a host copy of cu_seqlens and,
// for a device mask, from its per-sequence summary computed on the device
// (kernels/cuda/padding_summary.h: a few bytes per sequence cross to the
// host, not the mask), converts it into FlashProblems and takes device
// scratch for the table the launches read.
//
//   DA_ASSIGN_OR_RETURN(FlashCallLayout layout,
//                       FlashCallLayout::Make(params, stream, workspace));
//   cudaError_t error = FlashForward(params, layout.problems(), stream);
//
// Cost of the problem list: when cu_seqlens or the mask lives in device
// memory, Make copies cu_seqlens or the mask's summary to the host and waits
// for `stream` (cudaStreamSynchronize), so the call blocks until the work
// queued before it has finished (cu_seqlens given on the host avoid it); the
// kernels' upload of the table from pageable memory is one more copy per call
// (and neither can be captured into a CUDA graph). The backward pass builds the
// list again. The closed form costs none of this.

#ifndef ATTENTION_IMPROVED_CUDA_LAYOUT_H_
#define ATTENTION_IMPROVED_CUDA_LAYOUT_H_

#include <cuda_runtime_api.h>

#include <memory>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "attention/cuda_scratch.h"
#include "kernels/cuda/flash_attention.h"
#include "kernels/dilated_params.h"
#include "kernels/problem_list.h"
#include "memory/allocator.h"

namespace dilated {

// Returns the problems of a call in the kernels' form: Unimplemented when
// the key padding mask leaves padding between kept positions of a segment's
// selection (the kernels take strided problems only); InvalidArgument for
// cu_seqlens that do not describe seq_len rows (the front end checks only
// those given on the CPU).
// REQUIRES: params validated by the front end; cu_seqlens and the mask, when
// set, readable from the host.
absl::StatusOr<std::vector<kernels::gpu::FlashProblem>> FlashProblemsOf(
    const kernels::ForwardParams& params);

// The problem list of a call (kernels/problem_list.h) with the host copies
// it reads.
class CallProblemList {
 public:
  // Returns the problems of a call whose cu_seqlens and mask may live in
  // device memory: copies device cu_seqlens to the host and summarises a
  // device mask on the device, copying the whole mask only when the summary
  // shows padding between unpadded positions (waiting for `stream` when it
  // copies anything), with device scratch from `workspace`; InvalidArgument
  // for device cu_seqlens that do not describe seq_len rows.
  // REQUIRES: params validated by the front end.
  static absl::StatusOr<std::unique_ptr<CallProblemList>> Make(
      const kernels::ForwardParams& params, cudaStream_t stream,
      memory::Allocator* workspace);

  const kernels::ProblemList& list() const { return *list_; }
  // The parameters the list was built from (host-readable layout tensors);
  // Problem::group points into their groups.
  const kernels::ForwardParams& params() const { return params_; }

 private:
  CallProblemList() = default;

  kernels::ForwardParams params_{};
  std::vector<int32_t> cu_seqlens_;
  std::vector<uint8_t> mask_;
  std::unique_ptr<kernels::ProblemList> list_;
};

// Returns the problems of a call whose cu_seqlens and mask may live in
// device memory: copies device cu_seqlens to the host and summarises a
// device mask on the device (waiting for `stream` when it does either),
// with device scratch from `workspace`; errors as FlashProblemsOf.
// REQUIRES: params validated by the front end.
absl::StatusOr<std::vector<kernels::gpu::FlashProblem>> CallProblems(
    const kernels::ForwardParams& params, cudaStream_t stream,
    memory::Allocator* workspace);

// The layout of one call: the closed form, or the problem list with its
// device table. The table's scratch goes back (stream-ordered) when the
// object dies, so it must live until the call's kernels are queued.
class FlashCallLayout {
 public:
  // Returns the layout of a call with `params` on `stream`, the table's
  // scratch taken from `workspace` (never null); errors as FlashProblemsOf.
  // REQUIRES: params validated by the front end.
  static absl::StatusOr<FlashCallLayout> Make(
      const kernels::ForwardParams& params, cudaStream_t stream,
      memory::Allocator* workspace);

  FlashCallLayout(FlashCallLayout&&) = default;
  FlashCallLayout& operator=(FlashCallLayout&&) = default;

  // Returns what FlashForward and FlashBackward take: null for the closed
  // form, else the problems, valid while this object lives.
  const kernels::gpu::FlashProblems* problems();

 private:
  FlashCallLayout(bool closed_form,
                  std::vector<kernels::gpu::FlashProblem> list,
                  CudaScratch table)
      : closed_form_(closed_form),
        list_(std::move(list)),
        table_(std::move(table)) {}

  bool closed_form_;
  std::vector<kernels::gpu::FlashProblem> list_;
  CudaScratch table_;  // FlashProblemTableBytes(list_.size()) on the device.
  kernels::gpu::FlashProblems view_{};
};

}  // namespace dilated

#endif  // ATTENTION_IMPROVED_CUDA_LAYOUT_H_
