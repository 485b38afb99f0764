// File: nccl_util.h
//
// NCCL results as absl::Status, and the polling waits of the non-blocking
// NCCL communicator: for the communicator to leave ncclInProgress, and for
// a CUDA event while watching the communicator for asynchronous errors.
// CUDA builds only.

#ifndef DISTRIBUTED_INTERNAL_NCCL_UTIL_H_
#define DISTRIBUTED_INTERNAL_NCCL_UTIL_H_

#include <cuda_runtime_api.h>
#include <nccl.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace dilated {
namespace distributed {
namespace internal {

// Returns OK for ncclSuccess and ncclInProgress (the caller waits with
// WaitForNccl); else InvalidArgument for ncclInvalidArgument and
// ncclInvalidUsage, Unavailable for ncclRemoteError, Internal otherwise,
// naming `what`, ncclGetErrorString and, when `comm` is not null,
// ncclGetLastError(comm).
absl::Status NcclStatus(ncclResult_t result, ncclComm_t comm,
                        absl::string_view what);

// Polls ncclCommGetAsyncError until the communicator is no longer
// ncclInProgress. Returns its error as a Status, or DeadlineExceeded naming
// `what` if `deadline` passes first. Yields the CPU between polls.
absl::Status WaitForNccl(ncclComm_t comm, absl::Time deadline,
                         absl::string_view what);

// Polls `event` until it has completed, checking `comm` for asynchronous
// errors between polls; DeadlineExceeded naming `what` if `deadline` passes.
absl::Status WaitForEvent(cudaEvent_t event, ncclComm_t comm,
                          absl::Time deadline, absl::string_view what);

}  // namespace internal
}  // namespace distributed
}  // namespace dilated

#endif  // DISTRIBUTED_INTERNAL_NCCL_UTIL_H_
