"""The torch.distributed engine of the library's communicator: Python
functions, made C-callable with ctypes, that run each operation of
distributed::Communicator (python/ops/callback_communicator.h) with
torch.distributed on one process group. The operator libraries call them
through function pointers, so no Python header is needed there.

Host buffers become uint8 tensors over the same memory (torch.frombuffer on
a ctypes array); CUDA buffers become tensors through
__cuda_array_interface__, and the operations run on the library's stream.
A failure is kept for last_error and reported as an absl status code:
DEADLINE_EXCEEDED (4) when the backend timed out, INTERNAL (13) otherwise.
"""

import ctypes
import itertools
import threading

import torch
import torch.distributed as dist

_OK, _DEADLINE_EXCEEDED, _INTERNAL = 0, 4, 13

# distributed::ElementType and distributed::ReduceOp, in declaration order.
_ELEMENT_TYPES = (torch.float32, torch.float64, torch.int32, torch.int64,
                  torch.uint8)
_REDUCE_OPS = (dist.ReduceOp.SUM, dist.ReduceOp.MAX, dist.ReduceOp.MIN)

_ALL_GATHER = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p,
                               ctypes.c_uint64, ctypes.c_int, ctypes.c_int,
                               ctypes.c_void_p)
_REDUCE = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p,
                           ctypes.c_int64, ctypes.c_int, ctypes.c_int,
                           ctypes.c_int, ctypes.c_int, ctypes.c_void_p)
_BARRIER = ctypes.CFUNCTYPE(ctypes.c_int)
_START_EXCHANGE = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.c_int64, ctypes.POINTER(ctypes.c_int32),
    ctypes.POINTER(ctypes.c_int32), ctypes.POINTER(ctypes.c_void_p),
    ctypes.POINTER(ctypes.c_uint64), ctypes.c_int, ctypes.c_int,
    ctypes.c_void_p, ctypes.POINTER(ctypes.c_int64))
_FINISH_EXCHANGE = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int64)
_LAST_ERROR = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint64)


class _CudaMemory:
    """`size` bytes at `address` on a CUDA device, for torch.as_tensor."""

    def __init__(self, address, size):
        self.__cuda_array_interface__ = {
            "shape": (size,), "typestr": "|u1", "data": (address, False),
            "version": 3, "strides": None}


def _bytes_at(address, size, device_type, device_index):
    """A uint8 tensor over `size` bytes at `address` (no copy)."""
    if device_type == 1:
        return torch.as_tensor(_CudaMemory(address, size),
                               device=f"cuda:{device_index}")
    return torch.frombuffer((ctypes.c_uint8 * size).from_address(address),
                            dtype=torch.uint8)


def _elements_at(address, count, element_type, device_type, device_index):
    dtype = _ELEMENT_TYPES[element_type]
    size = count * torch.empty((), dtype=dtype).element_size()
    return _bytes_at(address, size, device_type, device_index).view(dtype)


class _StreamOf:
    """Runs the operation on the library's CUDA stream (a no-op on the
    host)."""

    def __init__(self, device_type, device_index, stream):
        self.context = None
        if device_type == 1:
            self.context = torch.cuda.stream(torch.cuda.ExternalStream(
                stream or 0, device=f"cuda:{device_index}"))

    def __enter__(self):
        if self.context is not None:
            self.context.__enter__()

    def __exit__(self, *exception):
        if self.context is not None:
            self.context.__exit__(*exception)


class ProcessGroupEngine:
    """The seven callbacks over `group`, kept alive with this object (the
    communicator that calls them lives as long as the process, so engines
    are never released)."""

    def __init__(self, group):
        self.group = group
        self.size = dist.get_world_size(group)
        self.error = b""
        self.pending = {}
        self.ids = itertools.count(1)
        self.lock = threading.Lock()
        self.functions = [
            _ALL_GATHER(self._guard(self.all_gather)),
            _REDUCE(self._guard(self.reduce_scatter)),
            _REDUCE(self._guard(self.all_reduce)),
            _BARRIER(self._guard(self.barrier)),
            _START_EXCHANGE(self._guard(self.start_exchange)),
            _FINISH_EXCHANGE(self._guard(self.finish_exchange)),
            _LAST_ERROR(self.last_error),
        ]

    def addresses(self):
        return [ctypes.cast(f, ctypes.c_void_p).value for f in self.functions]

    def _guard(self, operation):
        """`operation` returning a status code instead of raising: an
        exception must not cross the C boundary."""
        def guarded(*arguments):
            try:
                operation(*arguments)
                return _OK
            except Exception as error:  # Reported through last_error.
                self.error = f"{type(error).__name__}: {error}".encode()
                timed_out = "timed out" in str(error).lower() or (
                    "timeout" in str(error).lower())
                return _DEADLINE_EXCEEDED if timed_out else _INTERNAL
        return guarded

    def last_error(self, buffer, size):
        message = self.error[:max(0, size - 1)] + b"\0"
        ctypes.memmove(buffer, message, len(message))

    def all_gather(self, send, recv, size, device_type, device_index, stream):
        mine = _bytes_at(send, size, device_type, device_index)
        everyone = _bytes_at(recv, size * self.size, device_type,
                             device_index)
        with _StreamOf(device_type, device_index, stream):
            # The list form: every backend has it; the views write in place.
            dist.all_gather(list(everyone.split(size)), mine,
                            group=self.group)

    def all_reduce(self, send, recv, count, element_type, op, device_type,
                   device_index, stream):
        source = _elements_at(send, count, element_type, device_type,
                              device_index)
        target = _elements_at(recv, count, element_type, device_type,
                              device_index)
        with _StreamOf(device_type, device_index, stream):
            if send != recv:
                target.copy_(source)
            dist.all_reduce(target, op=_REDUCE_OPS[op], group=self.group)

    def reduce_scatter(self, send, recv, count, element_type, op, device_type,
                       device_index, stream):
        source = _elements_at(send, count * self.size, element_type,
                              device_type, device_index)
        target = _elements_at(recv, count, element_type, device_type,
                              device_index)
        rank = dist.get_rank(self.group)
        with _StreamOf(device_type, device_index, stream):
            # An all-reduce of a copy, of which this rank keeps its block:
            # not every backend has reduce_scatter (gloo has not).
            reduced = source.clone()
            dist.all_reduce(reduced, op=_REDUCE_OPS[op], group=self.group)
            target.copy_(reduced[rank * count:(rank + 1) * count])

    def barrier(self):
        dist.barrier(group=self.group)

    def start_exchange(self, count, kinds, peers, data, sizes, device_type,
                       device_index, stream, id_out):
        operations = []
        for i in range(count):
            buffer = _bytes_at(data[i], sizes[i], device_type, device_index)
            peer = dist.get_global_rank(self.group, peers[i])
            send_or_receive = dist.isend if kinds[i] == 0 else dist.irecv
            operations.append(dist.P2POp(send_or_receive, buffer, peer,
                                         group=self.group))
        with _StreamOf(device_type, device_index, stream):
            requests = dist.batch_isend_irecv(operations)
        with self.lock:
            exchange = next(self.ids)
            self.pending[exchange] = requests
        id_out[0] = exchange

    def finish_exchange(self, exchange):
        with self.lock:
            requests = self.pending.pop(exchange)
        for request in requests:
            request.wait()
