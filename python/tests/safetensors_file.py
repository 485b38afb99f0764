"""Reads safetensors files into torch tensors (the golden files of
tests/data), without the safetensors package."""

import json
import struct

import torch

_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I32": torch.int32,
    "I64": torch.int64,
    "BOOL": torch.bool,
    "U8": torch.uint8,
}


def load(path):
    """Returns (tensors by name, metadata dict)."""
    with open(path, "rb") as file:
        data = file.read()
    (header_size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + header_size])
    metadata = header.pop("__metadata__", {})
    body = data[8 + header_size:]
    tensors = {}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        dtype = _DTYPES[entry["dtype"]]
        flat = torch.frombuffer(bytearray(body[begin:end]), dtype=dtype)
        tensors[name] = flat.reshape(entry["shape"]).clone()
    return tensors, metadata
