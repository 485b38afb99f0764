// File: dropout_rng.h
//
// The random numbers of attention dropout, shared by every CPU and CUDA
// kernel: Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as
// 1, 2, 3", SC 2011), a counter-based generator, so that the random of any
// (query, key) pair is computed where it is needed, in any order, and the
// backward pass regenerates the forward pass's mask without storing it.
//
// The mask contract (kernels/dilated_params.h, DropoutParams). For a call
// with seed s and offset o, the probability of query position i attending
// key position j, on head h of sequence b (the batch entry, or the packed
// sequence index), with positions counted from the start of the sequence,
// is dropped exactly when
//
//   Philox4x32-10(counter, key)[j mod 4] < floor(p * 2^32)
//
//   key     = (s mod 2^32, s div 2^32)
//   stream  = (o + b * num_heads + h) mod 2^64
//   counter = (j div 4, i, stream mod 2^32, stream div 2^32)
//
// So one Philox call yields the randoms of 4 consecutive key positions of a
// query. The mask depends on nothing else: not on tiling, threads, the
// instruction set, the device or the implementation ("standard" and
// "improved" drop the same probabilities). Two calls draw independent masks
// when their seeds differ or their offsets differ by at least
// batch * num_heads. Positions must be below 2^32.
//
// Everything here is inline and callable from host and device code.

#ifndef KERNELS_DROPOUT_RNG_H_
#define KERNELS_DROPOUT_RNG_H_

#include <cstdint>

#include "kernels/dilated_params.h"

namespace dilated {
namespace kernels {

struct PhiloxBlock {
  uint32_t word[4];
};

// Returns Philox4x32 with 10 rounds of `counter` under `key`: the generator
// of Random123 (philox4x32_R with R = 10), bit for bit.
DA_HOST_DEVICE inline PhiloxBlock Philox4x32_10(PhiloxBlock counter,
                                                uint32_t key0, uint32_t key1) {
  constexpr uint32_t kMultiplier0 = 0xD2511F53u;
  constexpr uint32_t kMultiplier1 = 0xCD9E8D57u;
  constexpr uint32_t kWeyl0 = 0x9E3779B9u;  // golden ratio
  constexpr uint32_t kWeyl1 = 0xBB67AE85u;  // sqrt(3) - 1
  uint32_t* c = counter.word;
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      key0 += kWeyl0;
      key1 += kWeyl1;
    }
    const uint64_t product0 = static_cast<uint64_t>(kMultiplier0) * c[0];
    const uint64_t product1 = static_cast<uint64_t>(kMultiplier1) * c[2];
    const uint32_t hi0 = static_cast<uint32_t>(product0 >> 32);
    const uint32_t lo0 = static_cast<uint32_t>(product0);
    const uint32_t hi1 = static_cast<uint32_t>(product1 >> 32);
    const uint32_t lo1 = static_cast<uint32_t>(product1);
    const uint32_t next0 = hi1 ^ c[1] ^ key0;
    const uint32_t next2 = hi0 ^ c[3] ^ key1;
    c[0] = next0;
    c[1] = lo1;
    c[2] = next2;
    c[3] = lo0;
  }
  return counter;
}

// Returns the Philox output block that holds the randoms of key positions
// 4 * (key_position div 4) .. + 3 for `query_position` (the contract above).
DA_HOST_DEVICE inline PhiloxBlock DropoutRandomBlock(
    const DropoutParams& d, int64_t sequence, int64_t num_heads, int64_t head,
    int64_t query_position, int64_t key_position) {
  const uint64_t stream =
      d.offset +
      static_cast<uint64_t>(sequence) * static_cast<uint64_t>(num_heads) +
      static_cast<uint64_t>(head);
  PhiloxBlock counter;
  counter.word[0] = static_cast<uint32_t>(key_position >> 2);
  counter.word[1] = static_cast<uint32_t>(query_position);
  counter.word[2] = static_cast<uint32_t>(stream);
  counter.word[3] = static_cast<uint32_t>(stream >> 32);
  return Philox4x32_10(counter, static_cast<uint32_t>(d.seed),
                       static_cast<uint32_t>(d.seed >> 32));
}

// Returns the 32 random bits of (query_position, key_position).
DA_HOST_DEVICE inline uint32_t DropoutRandomBits(
    const DropoutParams& d, int64_t sequence, int64_t num_heads, int64_t head,
    int64_t query_position, int64_t key_position) {
  return DropoutRandomBlock(d, sequence, num_heads, head, query_position,
                            key_position)
      .word[key_position & 3];
}

// Returns what the probability of (query_position, key_position) is
// multiplied by: 0 when dropped, d.keep_scale when kept.
DA_HOST_DEVICE inline float DropoutFactor(const DropoutParams& d,
                                          int64_t sequence, int64_t num_heads,
                                          int64_t head, int64_t query_position,
                                          int64_t key_position) {
  return DropoutRandomBits(d, sequence, num_heads, head, query_position,
                           key_position) < d.drop_threshold
             ? 0.0f
             : d.keep_scale;
}

// Returns the parameters of dropout with probability p in [0, 1) (disabled
// when p == 0), seed and offset.
inline DropoutParams MakeDropoutParams(double p, uint64_t seed,
                                       uint64_t offset) {
  DropoutParams d{};
  if (!(p > 0.0)) return d;
  d.enabled = true;
  const double threshold = p * 4294967296.0;
  d.drop_threshold = threshold >= 4294967295.0
                         ? 0xFFFFFFFFu
                         : static_cast<uint32_t>(threshold);
  d.keep_scale = static_cast<float>(1.0 / (1.0 - p));
  d.seed = seed;
  d.offset = offset;
  return d;
}

}  // namespace kernels
}  // namespace dilated

#endif  // KERNELS_DROPOUT_RNG_H_
