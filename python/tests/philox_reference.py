"""The dropout mask contract of kernels/dropout_rng.h in plain Python:
Philox4x32-10 on Python integers and the (seed, offset, batch, head, query,
key) -> keep factor function, written from the contract, for the tests to
check the kernels' masks against."""

import torch

_MASK32 = 0xFFFFFFFF
_MASK64 = 0xFFFFFFFFFFFFFFFF


def philox4x32_10(counter, key):
    """Random123's philox4x32 with 10 rounds: 4 words from 4 counter words
    and 2 key words."""
    c0, c1, c2, c3 = counter
    k0, k1 = key
    for round_index in range(10):
        if round_index > 0:
            k0 = (k0 + 0x9E3779B9) & _MASK32
            k1 = (k1 + 0xBB67AE85) & _MASK32
        product0 = 0xD2511F53 * c0
        product1 = 0xCD9E8D57 * c2
        c0, c1, c2, c3 = ((product1 >> 32) ^ c1 ^ k0, product1 & _MASK32,
                          (product0 >> 32) ^ c3 ^ k1, product0 & _MASK32)
    return c0, c1, c2, c3


def dropout_factors(batch, num_heads, seq_len, p, seed, offset):
    """float64 [batch, heads, seq, seq]: 0 where (query, key) is dropped,
    1 / (1 - p) where kept. seed and offset as the operator takes them
    (signed 64-bit, read as unsigned)."""
    seed &= _MASK64
    offset &= _MASK64
    threshold = int(p * 2**32)
    key = (seed & _MASK32, seed >> 32)
    factors = torch.zeros(batch, num_heads, seq_len, seq_len,
                          dtype=torch.float64)
    for b in range(batch):
        for h in range(num_heads):
            stream = (offset + b * num_heads + h) & _MASK64
            for i in range(seq_len):
                for j0 in range(0, seq_len, 4):
                    words = philox4x32_10(
                        (j0 >> 2, i, stream & _MASK32, stream >> 32), key)
                    for j in range(j0, min(j0 + 4, seq_len)):
                        if words[j & 3] >= threshold:
                            factors[b, h, i, j] = 1.0 / (1.0 - p)
    return factors
