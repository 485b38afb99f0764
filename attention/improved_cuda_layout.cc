#include "attention/improved_cuda_layout.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "attention/backend_registry.h"
#include "attention/params_builder.h"
#include "base/cuda_util.h"
#include "factory/status_macros.h"
#include "kernels/cuda/padding_summary.h"
#include "kernels/problem_list.h"

namespace dilated {
namespace {

using kernels::gpu::FlashProblem;

constexpr char kHolesRefusal[] =
    "'improved' on CUDA cannot run a key_padding_mask with padding between "
    "kept positions of a segment (padding at the start or end of each "
    "sequence is supported; 'standard' runs it)";

// Returns whether the host must copy `data` before reading it: device (or
// managed) memory, which device work queued on the stream may still write.
absl::StatusOr<bool> InDeviceMemory(const void* data) {
  cudaPointerAttributes attributes;
  DA_RETURN_IF_ERROR(CudaStatus(cudaPointerGetAttributes(&attributes, data),
                                "cudaPointerGetAttributes"));
  return attributes.type == cudaMemoryTypeDevice ||
         attributes.type == cudaMemoryTypeManaged;
}

// What the host reads of the layout tensors of a call: a copy of
// device-resident cu_seqlens, and the summary of a device key padding mask
// (kernels/cuda/padding_summary.h) rather than the mask itself.
struct HostLayout {
  std::vector<int32_t> cu_seqlens;
  std::vector<kernels::gpu::PaddingSummary> padding;
};

// Queues a copy of device-resident cu_seqlens of `params` into `host` on
// `stream`, points `readable` at host memory holding them, and returns
// whether anything was queued.
absl::StatusOr<bool> QueueHostCopies(const kernels::ForwardParams& params,
                                     cudaStream_t stream, HostLayout* host,
                                     kernels::ForwardParams* readable) {
  bool queued = false;
  const kernels::SequenceParams& sequence = params.sequence;
  if (sequence.cu_seqlens != nullptr) {
    DA_ASSIGN_OR_RETURN(const bool on_device,
                        InDeviceMemory(sequence.cu_seqlens));
    if (on_device) {
      host->cu_seqlens.resize(params.batch + 1);
      DA_RETURN_IF_ERROR(CudaStatus(
          cudaMemcpyAsync(host->cu_seqlens.data(), sequence.cu_seqlens,
                          host->cu_seqlens.size() * sizeof(int32_t),
                          cudaMemcpyDeviceToHost, stream),
          "copying cu_seqlens to the host"));
      readable->sequence.cu_seqlens = host->cu_seqlens.data();
      queued = true;
    }
  }
  return queued;
}

// Returns the kernels' form of the problems of `params` (host-readable
// cu_seqlens and mask).
absl::StatusOr<std::vector<FlashProblem>> ConvertProblems(
    const kernels::ForwardParams& params,
    const kernels::ProblemList& problems) {
  std::vector<FlashProblem> list;
  list.reserve(problems.problems().size());
  for (const kernels::Problem& problem : problems.problems()) {
    if (problem.rows != nullptr) {
      return absl::UnimplementedError(kHolesRefusal);
    }
    const int64_t extent = problem.segment_end - problem.segment_begin;
    if (extent > std::numeric_limits<int32_t>::max()) {
      return absl::UnimplementedError(absl::StrCat(
          "'improved' on CUDA cannot run segments of more than 2^31 - 1 "
          "positions, got ",
          extent));
    }
    FlashProblem converted;
    converted.batch = problem.b;
    converted.segment_row = problem.row_base + problem.segment_begin;
    converted.group = static_cast<int32_t>(problem.group - params.groups);
    converted.first =
        static_cast<int32_t>(problem.first - problem.segment_begin);
    converted.step = static_cast<int32_t>(problem.step);
    converted.length = static_cast<int32_t>(problem.length);
    converted.extent = static_cast<int32_t>(extent);
    converted.segment_position = problem.segment_begin;
    list.push_back(converted);
  }
  return list;
}

// Queues the summary of the device key padding mask of `params` into
// host->padding on `stream`, its device part from `workspace`.
absl::StatusOr<CudaScratch> QueuePaddingSummary(
    const kernels::ForwardParams& params, cudaStream_t stream,
    memory::Allocator* workspace, HostLayout* host) {
  const size_t bytes = kernels::gpu::PaddingSummaryBytes(params.batch);
  DA_ASSIGN_OR_RETURN(CudaScratch summary,
                      CudaScratch::Allocate(bytes, stream, workspace));
  auto* device = static_cast<kernels::gpu::PaddingSummary*>(summary.data());
  DA_RETURN_IF_ERROR(CudaStatus(
      kernels::gpu::SummarizePadding(
          params.sequence.key_padding_mask, params.sequence.mask_stride_b,
          params.batch, params.seq_len, device, stream),
      "summarizing key_padding_mask"));
  host->padding.resize(params.batch);
  DA_RETURN_IF_ERROR(
      CudaStatus(cudaMemcpyAsync(host->padding.data(), device, bytes,
                                 cudaMemcpyDeviceToHost, stream),
                 "copying the key_padding_mask summary to the host"));
  return summary;
}

// Returns every sequence's unpadded interval, or nullopt when some sequence
// has padding between unpadded positions.
std::optional<std::vector<kernels::ProblemList::Interval>> UnpaddedIntervals(
    const std::vector<kernels::gpu::PaddingSummary>& padding) {
  std::vector<kernels::ProblemList::Interval> intervals;
  intervals.reserve(padding.size());
  for (const kernels::gpu::PaddingSummary& summary : padding) {
    if (summary.unpadded == 0) {
      intervals.push_back({0, 0});
      continue;
    }
    if (summary.unpadded != summary.end - summary.begin) return std::nullopt;
    intervals.push_back({summary.begin, summary.end});
  }
  return intervals;
}

}  // namespace

absl::StatusOr<std::vector<FlashProblem>> FlashProblemsOf(
    const kernels::ForwardParams& params) {
  DA_RETURN_IF_ERROR(CheckHostCuSeqlens(params));
  return ConvertProblems(params, kernels::ProblemList(params));
}

absl::StatusOr<std::unique_ptr<CallProblemList>> CallProblemList::Make(
    const kernels::ForwardParams& params, cudaStream_t stream,
    memory::Allocator* workspace) {
  std::unique_ptr<CallProblemList> call(new CallProblemList());
  call->params_ = params;
  kernels::ForwardParams& readable = call->params_;
  HostLayout host;
  DA_ASSIGN_OR_RETURN(bool queued,
                      QueueHostCopies(params, stream, &host, &readable));
  std::optional<CudaScratch> summary;
  const uint8_t* mask = params.sequence.key_padding_mask;
  bool device_mask = false;
  if (mask != nullptr) {
    DA_ASSIGN_OR_RETURN(device_mask, InDeviceMemory(mask));
    if (device_mask) {
      DA_ASSIGN_OR_RETURN(
          summary, QueuePaddingSummary(params, stream, workspace, &host));
      queued = true;
    }
  }
  if (queued) {
    DA_RETURN_IF_ERROR(CudaStatus(cudaStreamSynchronize(stream),
                                  "waiting for the layout tensors' copies"));
  }
  call->cu_seqlens_ = std::move(host.cu_seqlens);
  if (!call->cu_seqlens_.empty()) {
    readable.sequence.cu_seqlens = call->cu_seqlens_.data();
  }
  DA_RETURN_IF_ERROR(CheckHostCuSeqlens(readable));
  if (!device_mask) {
    call->list_ = std::make_unique<kernels::ProblemList>(readable);
    return call;
  }
  const std::optional<std::vector<kernels::ProblemList::Interval>> intervals =
      UnpaddedIntervals(host.padding);
  if (intervals.has_value()) {
    call->list_ = std::make_unique<kernels::ProblemList>(readable, *intervals);
    return call;
  }
  // Padding between unpadded positions: the row lists need the whole mask,
  // one row per batch entry (rows may overlap: a broadcast mask has stride 0).
  const int64_t n = params.seq_len;
  call->mask_.resize(params.batch * n);
  for (int64_t b = 0; b < params.batch; ++b) {
    DA_RETURN_IF_ERROR(
        CudaStatus(cudaMemcpyAsync(call->mask_.data() + b * n,
                                   mask + b * params.sequence.mask_stride_b, n,
                                   cudaMemcpyDeviceToHost, stream),
                   "copying key_padding_mask to the host"));
  }
  DA_RETURN_IF_ERROR(CudaStatus(cudaStreamSynchronize(stream),
                                "waiting for the key_padding_mask copy"));
  readable.sequence.key_padding_mask = call->mask_.data();
  readable.sequence.mask_stride_b = n;
  call->list_ = std::make_unique<kernels::ProblemList>(readable);
  return call;
}

absl::StatusOr<std::vector<FlashProblem>> CallProblems(
    const kernels::ForwardParams& params, cudaStream_t stream,
    memory::Allocator* workspace) {
  DA_ASSIGN_OR_RETURN(std::unique_ptr<CallProblemList> call,
                      CallProblemList::Make(params, stream, workspace));
  return ConvertProblems(call->params(), call->list());
}

absl::StatusOr<FlashCallLayout> FlashCallLayout::Make(
    const kernels::ForwardParams& params, cudaStream_t stream,
    memory::Allocator* workspace) {
  if (RequireFixedLayout("improved", params).ok()) {
    DA_ASSIGN_OR_RETURN(CudaScratch none,
                        CudaScratch::Allocate(0, stream, nullptr));
    return FlashCallLayout(/*closed_form=*/true, {}, std::move(none));
  }
  DA_ASSIGN_OR_RETURN(std::vector<FlashProblem> list,
                      CallProblems(params, stream, workspace));
  DA_ASSIGN_OR_RETURN(
      CudaScratch table,
      CudaScratch::Allocate(kernels::gpu::FlashProblemTableBytes(list.size()),
                            stream, workspace));
  return FlashCallLayout(/*closed_form=*/false, std::move(list),
                         std::move(table));
}

const kernels::gpu::FlashProblems* FlashCallLayout::problems() {
  if (closed_form_) return nullptr;
  view_ = kernels::gpu::FlashProblems{
      list_.data(), static_cast<int64_t>(list_.size()), table_.data()};
  return &view_;
}

}  // namespace dilated
