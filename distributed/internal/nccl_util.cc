#include "distributed/internal/nccl_util.h"

#include <cuda_runtime_api.h>
#include <nccl.h>
#include <sched.h>

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/cuda_util.h"

namespace dilated {
namespace distributed {
namespace internal {
namespace {

// Sleeps between polls: first a yield, then naps growing to a millisecond.
class Backoff {
 public:
  void Pause() {
    if (polls_++ < 64) {
      sched_yield();
      return;
    }
    absl::SleepFor(nap_);
    nap_ = std::min(nap_ * 2, absl::Milliseconds(1));
  }

 private:
  int polls_ = 0;
  absl::Duration nap_ = absl::Microseconds(20);
};

}  // namespace

absl::Status NcclStatus(ncclResult_t result, ncclComm_t comm,
                        absl::string_view what) {
  if (result == ncclSuccess || result == ncclInProgress) {
    return absl::OkStatus();
  }
  const char* last = comm != nullptr ? ncclGetLastError(comm) : nullptr;
  const std::string message = absl::StrCat(
      what, " failed: ", ncclGetErrorString(result),
      last != nullptr && last[0] != '\0' ? absl::StrCat(" (", last, ")")
                                         : std::string());
  switch (result) {
    case ncclInvalidArgument:
    case ncclInvalidUsage:
      return absl::InvalidArgumentError(message);
    case ncclRemoteError:
      return absl::UnavailableError(message);
    default:
      return absl::InternalError(message);
  }
}

absl::Status WaitForNccl(ncclComm_t comm, absl::Time deadline,
                         absl::string_view what) {
  Backoff backoff;
  for (;;) {
    ncclResult_t state = ncclSuccess;
    const ncclResult_t polled = ncclCommGetAsyncError(comm, &state);
    if (polled != ncclSuccess) {
      return NcclStatus(polled, comm, "ncclCommGetAsyncError");
    }
    if (state != ncclInProgress) return NcclStatus(state, comm, what);
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat(what, " did not complete in time"));
    }
    backoff.Pause();
  }
}

absl::Status WaitForEvent(cudaEvent_t event, ncclComm_t comm,
                          absl::Time deadline, absl::string_view what) {
  Backoff backoff;
  for (;;) {
    const cudaError_t query = cudaEventQuery(event);
    if (query == cudaSuccess) return absl::OkStatus();
    if (query != cudaErrorNotReady) {
      return CudaStatus(query, absl::StrCat("cudaEventQuery after ", what));
    }
    ncclResult_t state = ncclSuccess;
    const ncclResult_t polled = ncclCommGetAsyncError(comm, &state);
    if (polled != ncclSuccess) {
      return NcclStatus(polled, comm, "ncclCommGetAsyncError");
    }
    if (state != ncclSuccess && state != ncclInProgress) {
      return NcclStatus(state, comm, what);
    }
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat(what, " did not complete in time"));
    }
    backoff.Pause();
  }
}

}  // namespace internal
}  // namespace distributed
}  // namespace dilated
