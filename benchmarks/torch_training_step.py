"""A training step of a small LongNet through the PyTorch package, in one
run, same weights, same inputs, against
- the same model with its attention computed the way the Python library
  computes it (per group: strided gather, F.scaled_dot_product_attention,
  scatter of out / G): the same function, so the outputs are compared;
- the Python library's own LongNet (dilated-attention-pytorch 0.2.0 from
  PyPI, installed on first use by benchmarks/python_library_peer.py), same
  configuration, its own initialisation: that release is the upstream
  variant, whose multihead module has one LayerNorm (`norm`) where the
  fork this package follows has two (q_ln, k_ln), and whose attention
  divides each group's output by its sum over the sequence, so outputs
  differ by design and only the step time is compared. --no_python_library
  leaves it out (no pip).

A step: forward (causal), loss = mean(y^2), backward, AdamW. Prints the
median step time of each and the ratios.

  ./bazelw run -c opt //benchmarks:torch_training_step [-- --device=cuda]
"""

import argparse
import copy
import statistics
import time

import torch
import torch.nn as nn

import dilated_attention_torch as dat
from benchmarks import cpu_torch_peer
from benchmarks import python_library_peer


class GatherSdpaScatter(nn.Module):
    """The Python library's algorithm in plain PyTorch (the peer), as
    benchmarks/cpu_torch_peer.py writes it."""

    def __init__(self, segment_lengths, dilation_rates):
        super().__init__()
        self.segment_lengths = segment_lengths
        self.dilation_rates = dilation_rates

    def forward(self, q, k, v, is_causal=False, key_padding_mask=None):
        return cpu_torch_peer.dilated(q, k, v, self.segment_lengths,
                                      self.dilation_rates, is_causal)


def with_peer_attention(model):
    peer = copy.deepcopy(model)
    for module in peer.modules():
        if isinstance(module, dat.MultiheadDilatedAttention):
            module.attention = GatherSdpaScatter(
                module.attention.segment_lengths,
                module.attention.dilation_rates)
    return peer


def step_times(model, x, steps):
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    times = []
    for _ in range(steps + 1):  # The first step warms up.
        start = time.perf_counter()
        loss = model(x, is_causal=True).pow(2).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if x.is_cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:]) * 1e3


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seq", type=int, default=8192)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--no_python_library", action="store_true",
                        help="skip the Python library's LongNet (needs pip "
                        "on first use)")
    args = parser.parse_args()
    torch.manual_seed(0)
    config = dict(d_model=256, nhead=8, num_encoder_layers=2,
                  num_decoder_layers=2, dim_feedforward=512,
                  segment_lengths=[512, 1024, 2048], dilation_rates=[1, 2, 4],
                  dropout=0.0)
    ours = dat.LongNet(**config).to(args.device)
    peer = with_peer_attention(ours)
    x = torch.randn(1, args.seq, config["d_model"], device=args.device)
    with torch.no_grad():
        difference = (ours(x) - peer(x)).abs().max().item()
    library = None
    if not args.no_python_library:
        library = python_library_peer.load().LongNet(**config).to(
            args.device)
    ours_ms = step_times(ours, x, args.steps)
    peer_ms = step_times(peer, x, args.steps)
    library_ms = step_times(library, x, args.steps) if library else None
    print(f"torch {torch.__version__}, device {args.device}, "
          f"{torch.get_num_threads()} threads; LongNet {config}, "
          f"n={args.seq}, float32")
    print(f"training step (forward causal, backward, AdamW), median of "
          f"{args.steps}: dilated_attention_torch {ours_ms:.1f} ms, "
          f"gather + SDPA + scatter {peer_ms:.1f} ms, "
          f"ratio {peer_ms / ours_ms:.2f}x; max |difference| of outputs "
          f"{difference:.2e}")
    if library_ms is None:
        print("the Python library's LongNet: not run (--no_python_library)")
    else:
        print(f"the Python library's LongNet (dilated-attention-pytorch "
              f"0.2.0 from PyPI): {library_ms:.1f} ms, ratio "
              f"{library_ms / ours_ms:.2f}x")


if __name__ == "__main__":
    main()
