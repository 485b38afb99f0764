#include "models/cuda/stage_timer.h"

#include "base/cuda_util.h"
#include "factory/status_macros.h"

namespace dilated {
namespace models {

StageTimer::~StageTimer() {
  for (Record& record : records_) {
    cudaEventDestroy(record.start);
    cudaEventDestroy(record.end);
  }
}

absl::Status StageTimer::Begin(Stage stage, cudaStream_t stream) {
  if (!enabled_) return absl::OkStatus();
  if (open_) {
    return absl::FailedPreconditionError(
        "StageTimer::Begin: the previous stage was not ended (stages do not "
        "nest)");
  }
  if (used_ == records_.size()) {
    Record record;
    DA_RETURN_IF_ERROR(
        CudaStatus(cudaEventCreate(&record.start), "cudaEventCreate"));
    const cudaError_t error = cudaEventCreate(&record.end);
    if (error != cudaSuccess) {
      cudaEventDestroy(record.start);
      return CudaStatus(error, "cudaEventCreate");
    }
    records_.push_back(record);
  }
  Record& record = records_[used_];
  record.stage = stage;
  DA_RETURN_IF_ERROR(
      CudaStatus(cudaEventRecord(record.start, stream), "cudaEventRecord"));
  ++used_;
  open_ = true;
  return absl::OkStatus();
}

absl::Status StageTimer::End(cudaStream_t stream) {
  if (!enabled_) return absl::OkStatus();
  if (!open_) {
    return absl::FailedPreconditionError("StageTimer::End: no stage is open");
  }
  open_ = false;
  return CudaStatus(cudaEventRecord(records_[used_ - 1].end, stream),
                    "cudaEventRecord");
}

absl::StatusOr<StageTimes> StageTimer::Collect() {
  if (open_) {
    return absl::FailedPreconditionError(
        "StageTimer::Collect: a stage is still open");
  }
  StageTimes times;
  for (size_t i = 0; i < used_; ++i) {
    const Record& record = records_[i];
    DA_RETURN_IF_ERROR(
        CudaStatus(cudaEventSynchronize(record.end), "cudaEventSynchronize"));
    float milliseconds = 0.0f;
    DA_RETURN_IF_ERROR(CudaStatus(
        cudaEventElapsedTime(&milliseconds, record.start, record.end),
        "cudaEventElapsedTime"));
    switch (record.stage) {
      case Stage::kLinearProduct:
        times.linear_product_ms += milliseconds;
        break;
      case Stage::kLayerNorm:
        times.layer_norm_ms += milliseconds;
        break;
      case Stage::kAttention:
        times.attention_ms += milliseconds;
        break;
    }
  }
  used_ = 0;
  return times;
}

ScopedStage::ScopedStage(StageTimer* timer, Stage stage, cudaStream_t stream)
    : timer_(timer), stream_(stream) {
  if (timer_ == nullptr) return;
  status_ = timer_->Begin(stage, stream_);
  if (!status_.ok()) timer_ = nullptr;
}

ScopedStage::~ScopedStage() {
  // An End that fails leaves its stage without an end event: Collect()
  // then reports the error.
  if (timer_ != nullptr) timer_->End(stream_).IgnoreError();
}

}  // namespace models
}  // namespace dilated
