"""Communicators for "ring" and "distributed" across processes.

    comm = dilated_attention_torch.distributed.mpi_communicator()
    out = dilated_attention_torch.dilated_attention(
        q_shard, k_shard, v_shard, segments, rates, impl="ring",
        communicator=comm)

Run under mpirun (Open MPI), one process per rank. The MPI engine is a
library of its own (_ops_mpi.so), loaded on the first call, so that the rest
of the package does not need Open MPI installed. A torch.distributed process
group serves too (process_group_communicator): mapped onto MPI's ranks where
the job was launched by mpirun, or through the group's own backend.
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


# The MPI communicator once made: the modules ask for it at every call.
_MPI_COMMUNICATOR = None


def mpi_communicator(timeout_seconds=300):
    """The communicator over MPI_COMM_WORLD, created (collectively: every
    rank calls this) on the first call and returned again by later ones. An
    operation that waits longer than timeout_seconds for the other ranks
    fails with an error instead of hanging."""
    global _MPI_COMMUNICATOR
    if timeout_seconds <= 0:
        raise ValueError(
            f"timeout_seconds must be positive, got {timeout_seconds}")
    if _MPI_COMMUNICATOR is not None:
        return _MPI_COMMUNICATOR
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
    _MPI_COMMUNICATOR = Communicator(handle, rank, size)
    return _MPI_COMMUNICATOR


ENGINES = ("auto", "mpi", "process_group")

# One communicator per process group (and its engine, which must stay alive
# as long: the communicator calls its functions).
_PROCESS_GROUP_COMMUNICATORS = {}


def process_group_communicator(group=None, timeout_seconds=300,
                               engine="auto"):
    """The library's communicator over the ranks of a torch.distributed
    process group (None: the default group). Collective: every rank of the
    group calls it.

    engine:
      "mpi": the group must span the whole job of an Open MPI launch
        (mpirun) with the same ranks as MPI_COMM_WORLD (checked); the
        attention's traffic then goes through the MPI engine.
      "process_group": the group's own backend (gloo, NCCL, ...) carries
        the traffic, through Python functions the operators call back
        (_process_group_engine.py); any group, any launcher. Costs a Python
        call per message; its timeouts are the group's.
      "auto": "mpi" where it applies, else "process_group".

    Raises:
      ValueError: torch.distributed is not initialised, an unknown engine,
        or (engine "mpi") a job not launched by mpirun, a proper subgroup,
        ranks that are not MPI_COMM_WORLD's; each message says which.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine: unknown engine {engine!r}; known: "
                         f"{list(ENGINES)}")
    import torch.distributed as dist
    if not dist.is_available() or not dist.is_initialized():
        raise ValueError("process group: torch.distributed is not "
                         "initialised (call init_process_group first)")
    group = dist.group.WORLD if group is None else group
    if engine == "auto":
        engine = "mpi" if _mpi_mismatch(group) is None else "process_group"
    if engine == "mpi":
        mismatch = _mpi_mismatch(group)
        if mismatch is not None:
            raise ValueError(f"process group: {mismatch}")
        return mpi_communicator(timeout_seconds)
    return _process_group_engine_communicator(group, timeout_seconds)


def _mpi_mismatch(group):
    """Why `group` cannot be mapped onto MPI_COMM_WORLD, or None."""
    import torch.distributed as dist
    rank, size = dist.get_rank(), dist.get_world_size()
    if dist.get_world_size(group) != size or dist.get_rank(group) != rank:
        return (f"a subgroup of {dist.get_world_size(group)} of the {size} "
                "ranks cannot be mapped onto MPI_COMM_WORLD")
    launched = os.environ.get("OMPI_COMM_WORLD_SIZE")
    if launched is None:
        return ("the job was not launched by Open MPI's mpirun "
                "(OMPI_COMM_WORLD_SIZE is not set)")
    mpi_rank = int(os.environ.get("OMPI_COMM_WORLD_RANK", "-1"))
    if int(launched) != size or mpi_rank != rank:
        return (f"rank {rank} of {size} is MPI_COMM_WORLD's rank {mpi_rank} "
                f"of {launched}; initialise torch.distributed with rank = "
                "OMPI_COMM_WORLD_RANK and world_size = OMPI_COMM_WORLD_SIZE")
    return None


def _process_group_engine_communicator(group, timeout_seconds):
    import torch.distributed as dist
    from . import _process_group_engine
    if timeout_seconds <= 0:
        raise ValueError(
            f"timeout_seconds must be positive, got {timeout_seconds}")
    cached = _PROCESS_GROUP_COMMUNICATORS.get(id(group))
    if cached is not None and cached[0] is group:
        return cached[2]
    engine = _process_group_engine.ProcessGroupEngine(group)
    rank, size = dist.get_rank(group), dist.get_world_size(group)
    handle = torch.ops.dilated_attention.callback_communicator(
        rank, size, int(timeout_seconds), engine.addresses())
    communicator = Communicator(handle, rank, size)
    _PROCESS_GROUP_COMMUNICATORS[id(group)] = (group, engine, communicator)
    return communicator


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
