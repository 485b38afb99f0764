// File: nccl_communicator.h
//
// The NCCL engine of Communicator (CUDA builds only): one rank per process
// and GPU. Device buffers must live on options.device; their operations are
// enqueued on the caller's stream and may still run when a call returns.
// Host buffers are staged through device memory on an internal stream and
// have completed when a call returns. The communicator is non-blocking
// (ncclConfig_t.blocking = 0): creation and every NCCL call are polled with
// ncclCommGetAsyncError, and Barrier and host-buffer operations wait for
// the GPU by polling an event, so those waits give up after the timeout
// (DeadlineExceeded, the NCCL communicator aborted). Work on device buffers
// is not waited for here: a rank that never comes shows as a stream that
// does not finish.
//
// StartExchange on device buffers runs the sends and receives on an
// internal stream that first waits for the work already on the caller's
// stream; FinishExchange makes the caller's stream wait for them, so that
// work the caller enqueues in between overlaps the transfers.
//
//   DA_ASSIGN_OR_RETURN(std::unique_ptr<Communicator> mpi,
//                       CreateMpiCommunicator({}));
//   DA_ASSIGN_OR_RETURN(std::unique_ptr<Communicator> nccl,
//                       CreateNcclCommunicator({.device = local_rank}, *mpi));

#ifndef DISTRIBUTED_NCCL_COMMUNICATOR_H_
#define DISTRIBUTED_NCCL_COMMUNICATOR_H_

#include <memory>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "distributed/communicator.h"

namespace dilated {
namespace distributed {

struct NcclOptions {
  // The CUDA device of this rank.
  int device = 0;
  // How long creation, Barrier and host-buffer operations may wait
  // (positive; may be absl::InfiniteDuration()).
  absl::Duration timeout = absl::Minutes(5);
};

// Creates the communicator of `bootstrap`'s ranks (same rank and size): rank
// 0 makes NCCL's unique id and every rank receives it through bootstrap's
// AllGather of host bytes. Every rank of `bootstrap` calls this.
absl::StatusOr<std::unique_ptr<Communicator>> CreateNcclCommunicator(
    const NcclOptions& options, Communicator& bootstrap);

// Creates the communicator without another one: the rank and size come
// from DA_RANK and DA_WORLD_SIZE (else OMPI_COMM_WORLD_RANK and
// OMPI_COMM_WORLD_SIZE), and the unique id through the file named by
// DA_NCCL_ID_FILE on a file system every rank sees: rank 0 writes it
// atomically, the others wait for it up to the timeout. The file must not
// exist when the job starts (a stale id from an earlier job would be read):
// use a fresh path per job.
absl::StatusOr<std::unique_ptr<Communicator>>
CreateNcclCommunicatorFromEnvironment(const NcclOptions& options);

}  // namespace distributed
}  // namespace dilated

#endif  // DISTRIBUTED_NCCL_COMMUNICATOR_H_
