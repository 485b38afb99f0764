// File: mpi_communicator.h
//
// The MPI engine of Communicator: one rank per process, the ranks of
// MPI_COMM_WORLD (launched by mpirun). Host buffers go straight to MPI;
// device buffers (CUDA builds only) are staged through cached pinned host
// memory, copied on the caller's stream, so every call on device buffers has
// completed when it returns. In a build without CUDA, device buffers are
// FailedPrecondition.
//
//   DA_ASSIGN_OR_RETURN(std::unique_ptr<Communicator> comm,
//                       CreateMpiCommunicator({}));
//
// Every operation is non-blocking underneath (MPI_Iallgather,
// MPI_Ireduce_scatter_block, MPI_Iallreduce, MPI_Ibarrier, MPI_Isend and
// MPI_Irecv) and waited for by polling, which gives up after the timeout
// (see Communicator) and yields the CPU between polls.
//
// Threads: MPI is initialised with MPI_THREAD_FUNNELED, so only the thread
// that created the first MPI communicator calls MPI communicators (unless
// the application initialised MPI itself with more).
//
// Limits of MPI's int counts: a ReduceScatter block holds at most 2^31 - 1
// elements (InvalidArgument beyond); larger all-gathers, all-reduces and
// exchanges are split into several messages.

#ifndef DISTRIBUTED_MPI_COMMUNICATOR_H_
#define DISTRIBUTED_MPI_COMMUNICATOR_H_

#include <memory>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "distributed/communicator.h"

namespace dilated {
namespace distributed {

struct MpiOptions {
  // How long an operation may wait for the other ranks (positive; may be
  // absl::InfiniteDuration()).
  absl::Duration timeout = absl::Minutes(5);
};

// Initialises MPI if nobody has (and then finalises it at process exit,
// after the communicators destroyed before exit) and returns a communicator
// over a duplicate of MPI_COMM_WORLD, so that its messages never meet the
// application's. Several may exist at once; each is created collectively
// (every rank calls this). InvalidArgument for a timeout that is not
// positive.
absl::StatusOr<std::unique_ptr<Communicator>> CreateMpiCommunicator(
    const MpiOptions& options);

}  // namespace distributed
}  // namespace dilated

#endif  // DISTRIBUTED_MPI_COMMUNICATOR_H_
