#!/usr/bin/env python3
"""Reports the wgmma tile loop of each sm_90a kernel in a CUDA binary.

For every kernel whose SASS holds HGMMA (warpgroup wgmma) instructions, finds
the smallest loop (a backward branch and its target) that contains one, and
prints its length in instructions, its HGMMA count, the moves of ordinary
registers into uniform ones (R2UR), the local-memory spill operations
(STL/LDL) and the kernel's whole instruction count. A wgmma takes its
descriptors in uniform registers: R2UR in the tile loop means ptxas built
descriptors in ordinary registers (a warpgroup index or a buffer parity it
could not prove warp-uniform; see WarpUniform in kernels/cuda/wgmma.cuh),
which costs instructions on every tile. Runs on this machine, no GPU needed:

  ./bazelw build -c opt --config=cuda --dynamic_mode=off //benchmarks:cuda_tile_sweep
  pip install --target /tmp/nd nvidia-cuda-cuobjdump    # cuobjdump, if absent
  python3 benchmarks/gpu/sass_loops.py bazel-bin/benchmarks/cuda_tile_sweep \
      --cuobjdump /tmp/nd/nvidia/cu13/bin/cuobjdump --kernel 'Wgmma|Ws'

The loop found is a static view: it holds the instructions of every path
through the loop body (a masked branch included), not those a tile executes.
"""

import argparse
import collections
import re
import shutil
import subprocess
import sys

_INSTRUCTION = re.compile(r"\s*/\*([0-9a-f]{4,})\*/\s+(.*?);")
_TARGET = re.compile(r"0x([0-9a-f]+)")


def _opcode(text):
    words = text.split()
    if words and words[0].startswith("@"):
        words = words[1:]
    return words[0] if words else ""


def _functions(sass):
    """Yields (name, [(address, text)]) per function of cuobjdump -sass."""
    for part in re.split(r"\n\s*Function : ", sass)[1:]:
        name = part.split("\n", 1)[0].strip()
        body = []
        for line in part.split("\n"):
            match = _INSTRUCTION.match(line)
            if match:
                body.append((int(match.group(1), 16), match.group(2).strip()))
        yield name, body


def _tile_loop(body):
    """Returns the smallest loop body holding an HGMMA, or None."""
    best = None
    for address, text in body:
        if _opcode(text) != "BRA":
            continue
        match = _TARGET.search(text)
        if not match or int(match.group(1), 16) >= address:
            continue
        start = int(match.group(1), 16)
        loop = [t for a, t in body if start <= a <= address]
        if any(_opcode(t).startswith("HGMMA") for t in loop):
            if best is None or len(loop) < len(best):
                best = loop
    return best


def _demangled(names, cu_filt):
    if not cu_filt:
        return names
    result = subprocess.run([cu_filt], input="\n".join(names), text=True,
                            capture_output=True, check=False)
    lines = result.stdout.split("\n")
    return lines[:len(names)] if result.returncode == 0 else names


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("binary", help="executable, library or object file")
    parser.add_argument("--cuobjdump", default=shutil.which("cuobjdump"),
                        help="path of cuobjdump (default: from PATH)")
    parser.add_argument("--kernel", default="",
                        help="regular expression the kernel name must match")
    args = parser.parse_args()
    if not args.cuobjdump:
        sys.exit("cuobjdump not found: pass --cuobjdump (pip package "
                 "nvidia-cuda-cuobjdump)")
    result = subprocess.run([args.cuobjdump, "-sass", args.binary],
                            text=True, capture_output=True, check=False)
    if result.returncode != 0:
        sys.exit(f"cuobjdump failed: {result.stderr.strip()}")
    rows = []
    for name, body in _functions(result.stdout):
        if args.kernel and not re.search(args.kernel, name):
            continue
        loop = _tile_loop(body)
        if loop is None:
            continue
        ops = collections.Counter(_opcode(t) for t in loop)
        hgmma = sum(n for op, n in ops.items() if op.startswith("HGMMA"))
        spills = sum(n for op, n in ops.items()
                     if op.startswith("STL") or op.startswith("LDL"))
        rows.append((name, len(loop), hgmma, ops["R2UR"], spills, len(body)))
    if not rows:
        sys.exit("no kernel with an HGMMA loop matched")
    names = _demangled([r[0] for r in rows],
                       shutil.which("cu++filt") or shutil.which("c++filt"))
    print("loop\tHGMMA\tR2UR\tSTL/LDL\tkernel instructions\tkernel")
    for (_, loop, hgmma, r2ur, spills, total), name in zip(rows, names):
        print(f"{loop}\t{hgmma}\t{r2ur}\t{spills}\t{total}\t{name}")


if __name__ == "__main__":
    main()
