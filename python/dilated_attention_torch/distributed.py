"""Communicators for "ring" and "distributed" across processes.

    comm = dilated_attention_torch.distributed.mpi_communicator()
    out = dilated_attention_torch.dilated_attention(
        q_shard, k_shard, v_shard, segments, rates, impl="ring",
        communicator=comm)

Run under mpirun (Open MPI), one process per rank. The MPI engine is a
library of its own (_ops_mpi.so), loaded on the first call, so that the rest
of the package does not need Open MPI installed.
"""

import dataclasses
import os

import torch

from . import _library

MPI_LIBRARY = os.path.join(os.path.dirname(_library.CPU_LIBRARY),
                           "_ops_mpi.so")


@dataclasses.dataclass(frozen=True)
class Communicator:
    """A communicator of the library: this process's rank among `size`.
    `handle` is what the operators take (valid in this process only)."""
    handle: int
    rank: int
    size: int


def mpi_communicator(timeout_seconds=300):
    """The communicator over MPI_COMM_WORLD, created (collectively: every
    rank calls this) on the first call and returned again by later ones. An
    operation that waits longer than timeout_seconds for the other ranks
    fails with an error instead of hanging."""
    if timeout_seconds <= 0:
        raise ValueError(
            f"timeout_seconds must be positive, got {timeout_seconds}")
    if not os.path.exists(MPI_LIBRARY):
        raise ImportError(f"{MPI_LIBRARY} is missing: this build of the "
                          "package has no MPI engine")
    try:
        torch.ops.load_library(MPI_LIBRARY)
    except OSError as error:
        raise ImportError(f"the MPI engine did not load ({error}); it needs "
                          "Open MPI's libmpi.so.40 (Debian: libopenmpi3)"
                          ) from None
    handle, rank, size = torch.ops.dilated_attention.mpi_communicator(
        int(timeout_seconds))
    return Communicator(handle, rank, size)
