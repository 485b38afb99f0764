// File: launch_environment.h
//
// How a process started by a job launcher (mpirun, a batch system, a
// script) finds its rank and meets the other ranks without a communicator:
// the rank and world size come from environment variables, and a small
// secret (NCCL's unique id) travels through a file that rank 0 publishes
// and the others wait for. No NCCL or CUDA here, so that it is tested in
// every build.

#ifndef DISTRIBUTED_INTERNAL_LAUNCH_ENVIRONMENT_H_
#define DISTRIBUTED_INTERNAL_LAUNCH_ENVIRONMENT_H_

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace dilated {
namespace distributed {
namespace internal {

struct LaunchRank {
  int rank = 0;
  int size = 1;
};

// Returns the rank and size from DA_RANK and DA_WORLD_SIZE, else from Open
// MPI's OMPI_COMM_WORLD_RANK and OMPI_COMM_WORLD_SIZE (a pair is taken
// whole, never mixed). FailedPrecondition if neither pair is set;
// InvalidArgument naming the variable and its value if one is not an
// integer, the size is not positive or the rank is not in [0, size).
absl::StatusOr<LaunchRank> RankFromEnvironment();

// Writes `contents` to `path` atomically: to a temporary file in the same
// folder, then renamed, so that a reader sees all of it or nothing.
absl::Status PublishFile(const std::string& path, absl::string_view contents);

// Polls for `path` until it exists or `deadline` passes and returns its
// contents, which must be exactly `bytes` long (else InvalidArgument).
// DeadlineExceeded names the path and how long it waited.
absl::StatusOr<std::string> AwaitFile(const std::string& path, size_t bytes,
                                      absl::Time deadline);

}  // namespace internal
}  // namespace distributed
}  // namespace dilated

#endif  // DISTRIBUTED_INTERNAL_LAUNCH_ENVIRONMENT_H_
