"""Loads the operator libraries that sit next to this file.

_ops_cpu.so defines the operators (namespace ``dilated_attention``) and their
CPU kernels; _ops_cuda.so, present in CUDA builds, adds the CUDA kernels and
is loaded when this torch has CUDA.
"""

import os

import torch

_HERE = os.path.dirname(os.path.abspath(__file__))
CPU_LIBRARY = os.path.join(_HERE, "_ops_cpu.so")
CUDA_LIBRARY = os.path.join(_HERE, "_ops_cuda.so")


def load():
    """Loads the libraries once; returns whether the CUDA kernels are loaded."""
    if not os.path.exists(CPU_LIBRARY):
        raise ImportError(
            f"dilated_attention_torch: {CPU_LIBRARY} is missing; install the "
            "package with `pip install .` from the repository root"
        )
    torch.ops.load_library(CPU_LIBRARY)
    has_cuda = torch.version.cuda is not None and os.path.exists(CUDA_LIBRARY)
    if has_cuda:
        torch.ops.load_library(CUDA_LIBRARY)
    return has_cuda


HAS_CUDA_KERNELS = load()
