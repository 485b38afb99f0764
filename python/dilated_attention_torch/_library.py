"""Loads the operator libraries that sit next to this file.

_ops_cpu.so defines the operators (namespace ``dilated_attention``) and their
CPU kernels; _ops_cuda.so, present in CUDA builds, adds the CUDA kernels and
is loaded when this torch has CUDA.
"""

import os
import warnings

import torch

_HERE = os.path.dirname(os.path.abspath(__file__))
CPU_LIBRARY = os.path.join(_HERE, "_ops_cpu.so")
CUDA_LIBRARY = os.path.join(_HERE, "_ops_cuda.so")


def load():
    """Loads the libraries once; returns whether the CUDA kernels are loaded.

    A CUDA library that does not load (it links the cuBLAS of the CUDA
    toolkit it was built with, which torch's must match) is reported as a
    warning, and the CPU kernels stay usable.
    """
    if not os.path.exists(CPU_LIBRARY):
        raise ImportError(
            f"dilated_attention_torch: {CPU_LIBRARY} is missing; install the "
            "package with `pip install .` from the repository root"
        )
    torch.ops.load_library(CPU_LIBRARY)
    if torch.version.cuda is None or not os.path.exists(CUDA_LIBRARY):
        return False
    try:
        torch.ops.load_library(CUDA_LIBRARY)
    except OSError as error:
        warnings.warn(f"dilated_attention_torch: the CUDA kernels did not "
                      f"load ({error}); CUDA tensors are not supported")
        return False
    return True


HAS_CUDA_KERNELS = load()
