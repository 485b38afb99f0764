"""The operators on a GPU: results against the float64 oracle in every
dtype, opcheck, torch's current stream, and CUDA graph capture. Skipped
without CUDA; tagged gpu (bazel test runs it only where asked)."""

import unittest

import torch

import dilated_attention_torch as da
import oracle
import philox_reference

# Tolerances against float64, by storage dtype: float32 runs without TF32
# (rounding of sums over at most 64 keys); float16 and bfloat16 inputs and
# outputs keep 11 and 8 significant bits.
TOLERANCE = {torch.float32: 2e-5, torch.float16: 3e-3, torch.bfloat16: 2e-2}


@unittest.skipUnless(torch.cuda.is_available() and da._library.HAS_CUDA_KERNELS,
                     "needs a GPU and the CUDA operator library")
class CudaTest(unittest.TestCase):

    def test_forward_and_backward_match_the_oracle(self):
        for dtype in TOLERANCE:
            for causal in (False, True):
                with self.subTest(dtype=dtype, causal=causal):
                    q, k, v, grad = (torch.randn(2, 64, 4, 64)
                                     for _ in range(4))
                    inputs = [t.to("cuda", dtype).requires_grad_()
                              for t in (q, k, v)]
                    out = da.dilated_attention(*inputs, [16, 32, 64],
                                               [1, 2, 4], is_causal=causal)
                    out.backward(grad.to("cuda", dtype))
                    reference = [t.to(dtype).double().requires_grad_()
                                 for t in (q, k, v)]
                    expected = oracle.dilated_attention(
                        *reference, [16, 32, 64], [1, 2, 4],
                        is_causal=causal)
                    expected.backward(grad.to(dtype).double())
                    atol = TOLERANCE[dtype]
                    torch.testing.assert_close(out.double().cpu(), expected,
                                               atol=atol, rtol=0)
                    for got, want in zip(inputs, reference):
                        torch.testing.assert_close(
                            got.grad.double().cpu(), want.grad,
                            atol=atol * 4, rtol=0)

    def test_dropout_mask_matches_the_cpu_and_the_oracle(self):
        # The mask is a function of (seed, offset, batch, head, positions)
        # alone: the GPU must drop exactly what the plain-Python Philox says,
        # forward and backward, for "standard" and "improved" (whose
        # dropout runs on the mma.sync kernels).
        p, seed, offset = 0.25, 987654321, 11
        shape = (2, 64, 4, 64)
        factors = philox_reference.dropout_factors(
            shape[0], shape[2], shape[1], p, seed, offset)
        for dtype in (torch.float16, torch.bfloat16):
            for impl in ("standard", "improved"):
                with self.subTest(dtype=dtype, impl=impl):
                    q, k, v, grad = (torch.randn(shape) for _ in range(4))
                    inputs = [t.to("cuda", dtype).requires_grad_()
                              for t in (q, k, v)]
                    out, _ = torch.ops.dilated_attention.forward(
                        *inputs, [16, 32, 64], [1, 2, 4], True, None, impl,
                        None, None, 0, dropout_p=p, seed=seed, offset=offset)
                    out.backward(grad.to("cuda", dtype))
                    reference = [t.to(dtype).double().requires_grad_()
                                 for t in (q, k, v)]
                    expected = oracle.dilated_attention(
                        *reference, [16, 32, 64], [1, 2, 4], is_causal=True,
                        dropout_factors=factors)
                    expected.backward(grad.to(dtype).double())
                    # Kept probabilities grow by 1 / (1 - p) = 4/3.
                    atol = TOLERANCE[dtype] * 4 / 3
                    torch.testing.assert_close(out.double().cpu(), expected,
                                               atol=atol, rtol=0)
                    for got, want in zip(inputs, reference):
                        torch.testing.assert_close(
                            got.grad.double().cpu(), want.grad,
                            atol=atol * 4, rtol=0)

    def test_opcheck(self):
        q, k, v = (torch.randn(1, 64, 2, 64, device="cuda",
                               dtype=torch.float16, requires_grad=True)
                   for _ in range(3))
        torch.library.opcheck(
            torch.ops.dilated_attention.forward.default,
            (q, k, v, [32, 64], [1, 2], True, None, "improved", None, None))

    def test_runs_on_the_current_stream(self):
        q, k, v = (torch.randn(1, 256, 4, 64, device="cuda",
                               dtype=torch.float16) for _ in range(3))
        expected = da.dilated_attention(q, k, v, [64, 128], [1, 2])
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            # The inputs are written on the side stream after a long sleep:
            # kernels launched on any other stream would read them first.
            torch.cuda._sleep(200_000_000)
            late = [t * 1 for t in (q, k, v)]
            out = da.dilated_attention(*late, [64, 128], [1, 2])
        torch.cuda.current_stream().wait_stream(side)
        torch.testing.assert_close(out, expected)

    def test_cuda_graph_capture_and_replay(self):
        q, k, v = (torch.randn(1, 256, 4, 64, device="cuda",
                               dtype=torch.float16) for _ in range(3))
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            da.dilated_attention(q, k, v, [64, 128], [1, 2])  # Warm up.
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = da.dilated_attention(q, k, v, [64, 128], [1, 2])
        for _ in range(2):
            for t in (q, k, v):
                t.copy_(torch.randn_like(t))
            graph.replay()
            torch.testing.assert_close(
                out, da.dilated_attention(q, k, v, [64, 128], [1, 2]))


if __name__ == "__main__":
    unittest.main()
