// File: stage_timer.h
//
// StageTimer: where a model's forward spends its device time, measured
// inside the forward. When enabled, the linear products, LayerNorms and
// attention calls of the layers that share it record a pair of CUDA events
// around their work on the forward's stream; Collect() then sums the elapsed
// times per kind of stage. Disabled (the default) it records nothing. The
// events only timestamp the stream: the forward's work and order do not
// change. Not safe for concurrent use, like the model that holds it.
//
//   model->stage_timer().Enable();
//   absl::StatusOr<DeviceTensor> y = model->Forward(x, true, stream);
//   absl::StatusOr<StageTimes> times = model->stage_timer().Collect();

#ifndef MODELS_CUDA_STAGE_TIMER_H_
#define MODELS_CUDA_STAGE_TIMER_H_

#include <cuda_runtime_api.h>

#include <cstddef>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace dilated {
namespace models {

enum class Stage { kLinearProduct, kLayerNorm, kAttention };

// Milliseconds of device time per kind of stage, summed over the stages
// recorded since the last Collect().
struct StageTimes {
  double linear_product_ms = 0.0;
  double layer_norm_ms = 0.0;
  double attention_ms = 0.0;
};

class StageTimer {
 public:
  StageTimer() = default;
  ~StageTimer();
  StageTimer(const StageTimer&) = delete;
  StageTimer& operator=(const StageTimer&) = delete;

  void Enable() { enabled_ = true; }
  bool enabled() const { return enabled_; }

  // Records the start of `stage` on `stream` (nothing when disabled).
  absl::Status Begin(Stage stage, cudaStream_t stream);
  // Records the end of the stage begun last.
  absl::Status End(cudaStream_t stream);

  // Waits for the last recorded event and returns the times of the stages
  // recorded since the previous Collect(); FailedPrecondition when a stage
  // is still open.
  absl::StatusOr<StageTimes> Collect();

 private:
  struct Record {
    Stage stage;
    cudaEvent_t start = nullptr;
    cudaEvent_t end = nullptr;
  };

  bool enabled_ = false;
  bool open_ = false;
  // records_[0, used_) belong to the current forward; the rest are kept to
  // be reused (each owns its two events).
  std::vector<Record> records_;
  size_t used_ = 0;
};

// Begins `stage` on construction and ends it on destruction, when `timer`
// is not null and enabled; status() says whether recording the begin failed.
class ScopedStage {
 public:
  ScopedStage(StageTimer* timer, Stage stage, cudaStream_t stream);
  ~ScopedStage();
  ScopedStage(const ScopedStage&) = delete;
  ScopedStage& operator=(const ScopedStage&) = delete;

  const absl::Status& status() const { return status_; }

 private:
  StageTimer* timer_;
  cudaStream_t stream_;
  absl::Status status_;
};

}  // namespace models
}  // namespace dilated

#endif  // MODELS_CUDA_STAGE_TIMER_H_
