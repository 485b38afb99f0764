#include "distributed/local_kernels.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

#ifdef DA_SEQUENCE_PARALLEL_HAS_CUDA
#include <cuda_runtime_api.h>
#endif

namespace dilated {
namespace distributed {
namespace {

constexpr size_t kScratchAlignment = 256;

absl::Status NoCuda() {
  return absl::FailedPreconditionError(
      "CUDA tensors need a build with --config=cuda");
}

#ifdef DA_SEQUENCE_PARALLEL_HAS_CUDA
absl::Status GpuStatus(int code, const char* what) {
  if (code == cudaSuccess) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(
      what, ": ", cudaGetErrorString(static_cast<cudaError_t>(code))));
}
#define DA_ROW_OP(cpu_call, gpu_call, name) \
  if (!on_device()) {                       \
    cpu::cpu_call;                          \
    return absl::OkStatus();                \
  }                                         \
  return GpuStatus(gpu::gpu_call, name)
#else
#define DA_ROW_OP(cpu_call, gpu_call, name) \
  if (!on_device()) {                       \
    cpu::cpu_call;                          \
    return absl::OkStatus();                \
  }                                         \
  return NoCuda()
#endif

}  // namespace

Scratch& Scratch::operator=(Scratch&& other) noexcept {
  if (this != &other) {
    Release();
    data_ = std::exchange(other.data_, nullptr);
    bytes_ = other.bytes_;
    stream_ = other.stream_;
    allocator_ = other.allocator_;
  }
  return *this;
}

void Scratch::Release() {
  if (data_ != nullptr) {
    allocator_->Deallocate(data_, bytes_, kScratchAlignment, stream_);
    data_ = nullptr;
  }
}

absl::StatusOr<Scratch> LocalKernels::Allocate(size_t bytes) {
  Scratch scratch;
  absl::StatusOr<void*> data =
      context_.workspace->Allocate(bytes, kScratchAlignment, context_.stream);
  if (!data.ok()) return data.status();
  scratch.data_ = *data;
  scratch.bytes_ = bytes;
  scratch.stream_ = context_.stream;
  scratch.allocator_ = context_.workspace;
  return scratch;
}

template <typename Params, typename Run>
absl::Status LocalKernels::RunBest(const kernels::ForwardParams& forward,
                                   const kernels::BackwardParams* backward,
                                   Run run) {
  std::vector<std::string> refusals;
  for (const std::string& name : BackendNames(context_.device.type)) {
    std::optional<Backend> backend = FindBackend(name, context_.device.type);
    if (!backend.has_value()) continue;
    absl::Status status = backend->supports(forward, backward);
    if (status.ok()) {
      status = run(*backend);
      if (status.code() != absl::StatusCode::kUnimplemented) return status;
    }
    refusals.push_back(std::string(status.message()));
  }
  if (context_.device.type == DeviceType::kCuda && refusals.empty()) {
    return NoCuda();
  }
  return absl::UnimplementedError(absl::StrCat(
      "no local backend for ", DeviceName(context_.device),
      " can run a block of this call: ", absl::StrJoin(refusals, "; ")));
}

bool LocalKernels::BackwardReadsForwardLse(
    const kernels::BackwardParams& params) const {
  for (const std::string& name : BackendNames(context_.device.type)) {
    std::optional<Backend> backend = FindBackend(name, context_.device.type);
    if (backend.has_value() &&
        backend->supports(params.forward, &params).ok()) {
      return backend->backward_reads_forward_lse;
    }
  }
  return false;
}

absl::Status LocalKernels::Forward(const kernels::ForwardParams& params) {
  return RunBest<kernels::ForwardParams>(
      params, nullptr,
      [&](const Backend& b) { return b.forward(params, context_); });
}

absl::Status LocalKernels::Backward(const kernels::BackwardParams& params) {
  return RunBest<kernels::BackwardParams>(
      params.forward, &params,
      [&](const Backend& b) { return b.backward(params, context_); });
}

absl::Status LocalKernels::CopyRows(kernels::DataType dtype,
                                    const RowsShape& shape,
                                    const kernels::TensorParams& src,
                                    const kernels::TensorParams& dst) {
  DA_ROW_OP(CopyRows(dtype, shape, src, dst),
            CopyRows(dtype, shape, src, dst, context_.stream), "copy rows");
}

absl::Status LocalKernels::ZeroRows(kernels::DataType dtype,
                                    const RowsShape& shape,
                                    const kernels::TensorParams& dst) {
  DA_ROW_OP(ZeroRows(dtype, shape, dst),
            ZeroRows(dtype, shape, dst, context_.stream), "zero rows");
}

absl::Status LocalKernels::FillLse(const RowsShape& shape, const LseView& dst,
                                   float value) {
  DA_ROW_OP(FillLse(shape, dst, value),
            FillLse(shape, dst, value, context_.stream), "fill lse");
}

absl::Status LocalKernels::CopyLse(const RowsShape& shape, const LseView& src,
                                   const LseView& dst) {
  DA_ROW_OP(CopyLse(shape, src, dst), CopyLse(shape, src, dst, context_.stream),
            "copy lse");
}

absl::Status LocalKernels::ClearAccumulator(const RowsShape& shape,
                                            const Accumulator& acc) {
  DA_ROW_OP(ClearAccumulator(shape, acc),
            ClearAccumulator(shape, acc, context_.stream), "clear accumulator");
}

absl::Status LocalKernels::MergeInto(kernels::DataType dtype,
                                     const RowsShape& shape,
                                     const kernels::TensorParams& piece,
                                     const LseView& piece_lse,
                                     const Accumulator& acc) {
  DA_ROW_OP(MergeInto(dtype, shape, piece, piece_lse, acc),
            MergeInto(dtype, shape, piece, piece_lse, acc, context_.stream),
            "merge by lse");
}

absl::Status LocalKernels::AddInto(kernels::DataType dtype,
                                   const RowsShape& shape,
                                   const kernels::TensorParams& src,
                                   const Accumulator& acc) {
  DA_ROW_OP(AddInto(dtype, shape, src, acc),
            AddInto(dtype, shape, src, acc, context_.stream), "add rows");
}

absl::Status LocalKernels::StoreAccumulator(kernels::DataType dtype,
                                            const RowsShape& shape,
                                            const Accumulator& acc, float scale,
                                            const kernels::TensorParams& dst,
                                            const LseView& dst_lse) {
  DA_ROW_OP(
      StoreAccumulator(dtype, shape, acc, scale, dst, dst_lse),
      StoreAccumulator(dtype, shape, acc, scale, dst, dst_lse, context_.stream),
      "store accumulator");
}

}  // namespace distributed
}  // namespace dilated
