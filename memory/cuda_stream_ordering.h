// File: cuda_stream_ordering.h
//
// CudaStreamOrdering: the StreamOrdering of device pools. OrderAfter records
// an event on the producer stream and makes the consumer stream wait for it
// (cudaEventRecord + cudaStreamWaitEvent): the host never blocks, and the
// consumer's later work cannot touch a reused block before the producer's
// earlier work is done. One event serves every call: cudaStreamWaitEvent
// captures the event's state when it is called, so recording it again later
// does not disturb an earlier wait.
//
//   absl::StatusOr<std::unique_ptr<CudaStreamOrdering>> ordering =
//       CudaStreamOrdering::Create(/*device=*/0);

#ifndef MEMORY_CUDA_STREAM_ORDERING_H_
#define MEMORY_CUDA_STREAM_ORDERING_H_

#include <memory>
#include <mutex>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "memory/stream_ordering.h"

namespace dilated {
namespace memory {

class CudaStreamOrdering final : public StreamOrdering {
 public:
  // Returns an ordering for the streams of `device`; InvalidArgument if
  // there is no such device.
  static absl::StatusOr<std::unique_ptr<CudaStreamOrdering>> Create(int device);
  ~CudaStreamOrdering() override;

  absl::Status OrderAfter(StreamHandle consumer,
                          StreamHandle producer) override;
  absl::Status SynchronizeAll() override;

 private:
  CudaStreamOrdering(int device, void* event);

  const int device_;
  std::mutex mutex_;
  void* const event_ ABSL_GUARDED_BY(mutex_);  // cudaEvent_t.
};

}  // namespace memory
}  // namespace dilated

#endif  // MEMORY_CUDA_STREAM_ORDERING_H_
