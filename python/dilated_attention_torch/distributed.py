"""Communicators for "ring" and "distributed" across processes.

    comm = dilated_attention_torch.distributed.mpi_communicator()
    out = dilated_attention_torch.dilated_attention(
        q_shard, k_shard, v_shard, segments, rates, impl="ring",
        communicator=comm)

Run under mpirun (Open MPI), one process per rank. The MPI engine is a
library of its own (_ops_mpi.so), loaded on the first call, so that the rest
of the package does not need Open MPI installed. A torch.distributed process
group over the whole job of such a launch maps onto the same ranks
(process_group_communicator).
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


def process_group_communicator(group=None, timeout_seconds=300):
    """The library's communicator over the ranks of a torch.distributed
    process group (None: the default group).

    The operators are built without Python headers, so they cannot drive a
    c10d process group; instead, a group that spans the whole job of an
    Open MPI launch (mpirun) is mapped onto MPI_COMM_WORLD, whose ranks are
    the same processes. Both the group's rank and size and MPI's must agree;
    the attention's traffic then goes through MPI, not through the group's
    backend. Collective: every rank calls it.

    Raises:
      ValueError: torch.distributed is not initialised, the process was not
        launched by mpirun, the group is a proper subgroup, or its ranks are
        not MPI_COMM_WORLD's (each message says which).
    """
    import torch.distributed as dist
    if not dist.is_available() or not dist.is_initialized():
        raise ValueError("process group: torch.distributed is not "
                         "initialised (call init_process_group first)")
    rank, size = dist.get_rank(), dist.get_world_size()
    if group is not None and (dist.get_world_size(group) != size
                              or dist.get_rank(group) != rank):
        raise ValueError(
            f"process group: a subgroup of {dist.get_world_size(group)} of "
            f"the {size} ranks cannot be used; only the whole job's group is "
            "mapped onto MPI_COMM_WORLD")
    launched = os.environ.get("OMPI_COMM_WORLD_SIZE")
    if launched is None:
        raise ValueError(
            "process group: the ranks reach each other through MPI, so the "
            "job must be launched by Open MPI's mpirun (OMPI_COMM_WORLD_SIZE "
            "is not set); or pass communicator=mpi_communicator()")
    mpi_rank = int(os.environ.get("OMPI_COMM_WORLD_RANK", "-1"))
    if int(launched) != size or mpi_rank != rank:
        raise ValueError(
            f"process group: rank {rank} of {size} is MPI_COMM_WORLD's rank "
            f"{mpi_rank} of {launched}; initialise torch.distributed with "
            "rank = OMPI_COMM_WORLD_RANK and world_size = "
            "OMPI_COMM_WORLD_SIZE")
    return mpi_communicator(timeout_seconds)


def resolve_communicator(communicator):
    """The Communicator a sequence-parallel module runs on: `communicator`
    itself, the one of a torch.distributed ProcessGroup, or, for None, the
    default process group's when torch.distributed is initialised with more
    than one rank, else None (one process)."""
    if communicator is None:
        import torch.distributed as dist
        if (dist.is_available() and dist.is_initialized()
                and dist.get_world_size() > 1):
            return process_group_communicator()
        return None
    if isinstance(communicator, Communicator):
        return communicator
    import torch.distributed as dist
    if dist.is_available() and isinstance(communicator, dist.ProcessGroup):
        return process_group_communicator(communicator)
    raise TypeError("communicator must be a Communicator (mpi_communicator()),"
                    " a torch.distributed ProcessGroup or None, got "
                    f"{type(communicator).__name__}")
