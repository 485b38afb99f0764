"""One block_sparse forward of the PyTorch package and one FlexAttention
forward on the same layout (local_window, float16, b = 1, h = 8, block 128),
inside an NVTX range named "probe" for Nsight Compute to select, after three
warm-up calls of each (FlexAttention compiles in the first):

  ncu --clock-control none --set full --nvtx --nvtx-include "probe/" \\
      -o sparse -f python3 sparse_ncu.py [n] [head_dim] [window]
"""

import sys

import torch
from torch.nn.attention.flex_attention import flex_attention

import dilated_attention_torch as dat
from sparse_compare import BLOCK
from sparse_compare import flex_block_mask


def main():
  n = int(sys.argv[1]) if len(sys.argv) > 1 else 262144
  head_dim = int(sys.argv[2]) if len(sys.argv) > 2 else 64
  window = int(sys.argv[3]) if len(sys.argv) > 3 else 512
  shape = (1, n, 8, head_dim)
  q, k, v = (torch.randn(shape, device="cuda", dtype=torch.float16)
             for _ in range(3))
  kwargs = dict(block_size=BLOCK, block_pattern="local_window",
                block_window=window)
  block_mask = flex_block_mask(dat.block_layout(n, 8, **kwargs)[0].cuda())
  qt, kt, vt = (t.transpose(1, 2) for t in (q, k, v))
  flex = torch.compile(flex_attention)

  def ours():
    return dat.dilated_attention(q, k, v, [n], [1], impl="block_sparse",
                                 **kwargs)

  def theirs():
    return flex(qt, kt, vt, block_mask=block_mask)

  with torch.no_grad():
    for _ in range(3):
      ours()
      theirs()
    torch.cuda.synchronize()
    torch.cuda.nvtx.range_push("probe")
    ours()
    theirs()
    torch.cuda.synchronize()
    torch.cuda.nvtx.range_pop()


if __name__ == "__main__":
  main()
