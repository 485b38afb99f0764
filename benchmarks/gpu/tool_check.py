#!/usr/bin/env python3
"""Runs the dilated_attention command with --device=cuda on golden files and
checks its outputs against the files' float64 expectations (the GPU machine
has no safetensors package: the format is read here with json and numpy).

    python3 tool_check.py --binary .gpu/dilated_attention tests/data/golden/f16_packed.safetensors ...
    python3 tool_check.py --binary .gpu_dist/dilated_attention --impl=ring \
        --launcher=".gpu_dist/mpi_run.sh 2" --flag=--comm=mpi FILES...
"""

import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np

DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16,
          "BF16": np.uint16, "I32": np.int32, "I64": np.int64, "U8": np.uint8,
          "BOOL": np.bool_}
# Per storage dtype: a few roundings of the stored result (the golden test
# holds the kernels to the tight bounds; this checks the command's plumbing).
TOLERANCE = {"F32": 1e-4, "F16": 4e-3}


def read(path):
    with open(path, "rb") as f:
        size = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(size))
        data = f.read()
    metadata = header.pop("__metadata__", {})
    tensors = {}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        values = np.frombuffer(data[begin:end], dtype=DTYPES[entry["dtype"]])
        if entry["dtype"] == "BF16":  # numpy has no bfloat16: widen the bits
            values = (values.astype(np.uint32) << 16).view(np.float32)
        tensors[name] = (entry["dtype"], values.reshape(entry["shape"]))
    return metadata, tensors


def check(binary, path, impl="auto", launcher=(), flags=()):
    metadata, golden = read(path)
    output = os.path.join(tempfile.mkdtemp(), "out.safetensors")
    args = [*launcher, binary, "--impl=" + impl, "--device=cuda", "--backward",
            *flags,
            "--segment_lengths=" + metadata["segment_lengths"],
            "--dilation_rates=" + metadata["dilation_rates"],
            "--is_causal=" + metadata["is_causal"],
            "--input=" + path, "--output=" + output]
    if "softmax_scale" in metadata:
        args.append("--softmax_scale=" + metadata["softmax_scale"])
    run = subprocess.run(args, capture_output=True, text=True)
    if run.returncode != 0:
        print(f"{os.path.basename(path)}: exit {run.returncode}: {run.stderr.strip()}")
        return False
    _, written = read(output)
    dtype = golden["q"][0]
    ok = True
    for name in ("out", "grad_q", "grad_k", "grad_v"):
        got = written[name][1].astype(np.float64)
        want = golden[name][1]
        tol = TOLERANCE.get(dtype, 3e-2)
        worst = float(np.max(np.abs(got - want) / (tol + tol * np.abs(want))))
        ok = ok and worst <= 1.0 and got.shape == want.shape
        print(f"{os.path.basename(path)} {name}: shape {got.shape}, worst ratio {worst:.3f}")
    return ok


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    parser.add_argument("--impl", default="auto")
    parser.add_argument("--launcher", default="",
                        help="command the binary runs under, e.g. 'mpi_run.sh 2'")
    parser.add_argument("--flag", action="append", default=[],
                        help="an extra flag for the binary (repeatable)")
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()
    results = [check(args.binary, path, args.impl, args.launcher.split(),
                     args.flag) for path in args.files]
    print("tool_check:", "PASS" if all(results) else "FAIL")
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
