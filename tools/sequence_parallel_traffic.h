// File: sequence_parallel_traffic.h
//
// A model, by arithmetic alone, of what one rank of a sequence-parallel call
// ("distributed" or "ring", distributed/shard_runner.h) sends and receives,
// the useful FLOPs it computes and the K/V buffers it holds. Nothing runs:
// the rows come from distributed::PlanShard, the messages from the
// algorithm as shard_runner.h describes it. Per shared segment, with H the
// ranks holding rows of it and u(R) = R * batch * heads_of_group * head_dim
// the elements of R rows:
//   - all-gather, forward: this rank's R rows of K and V go to every other
//     holder that attends them (non-causal: all H - 1; causal: the later
//     ones), and it receives the rows it attends: 2 * u(R) * kv_bytes per
//     message;
//   - all-gather, backward: the same gather again, then the key gradients
//     of each other holder's rows that this rank attended go back to their
//     owner in the call's dtype (grad_bytes);
//   - ring (every holder has as many rows): H - 1 steps of K and V, causal
//     or not, and in backward H hops of float32 dK and dV accumulators;
//   - a segment whose holders hold unequal runs is gathered as in the
//     all-gather forward and backward, whichever the algorithm.
// Not modelled: the call agreement every call starts with
// (distributed::AgreementBytes() * (P - 1) each way per call), which the
// caller adds.
//
// The model must equal the communicator's byte counters of a real call;
// benchmarks/sequence_parallel_benchmark.cc checks that it does.

#ifndef TOOLS_SEQUENCE_PARALLEL_TRAFFIC_H_
#define TOOLS_SEQUENCE_PARALLEL_TRAFFIC_H_

#include <cstdint>
#include <string>
#include <vector>

#include "attention/config.h"
#include "kernels/dilated_params.h"

namespace dilated {
namespace tools {

enum class SpAlgorithm { kAllGather, kRing };

// One sequence-parallel problem: the whole sequence of seq_len positions
// over `ranks` equal shards.
struct SpProblem {
  int64_t batch = 1;
  int64_t num_heads = 8;
  int64_t head_dim = 64;
  std::vector<int64_t> segment_lengths;
  std::vector<int64_t> dilation_rates;
  int64_t seq_len = 0;  // REQUIRES: a multiple of ranks.
  int ranks = 1;
  bool is_causal = false;
  int64_t kv_bytes = 2;    // Bytes of one K or V element (the dtype).
  int64_t grad_bytes = 2;  // Bytes of one dK/dV element the all-gather sends.
  ShardPlacement placement = ShardPlacement::kContiguous;
};

// Sets `problem`'s heads and groups to a named configuration over a
// sequence of `seq_len` positions (b = 1, d = 64, as SpProblem's defaults):
//   A   segments 2048, 4096, 8192; rates 1, 2, 4; h = 8 (docs/BASELINES.md).
//   L   segments 2048, 8192, seq_len; rates 1, 4, 16; h = 8: the last
//       segment spans every shard.
//   G2  segments 2048 * 2^k below seq_len, then seq_len; rate = segment /
//       2048 (2048 rows per segment); h = 32 (seq_len = 2^30: 20 groups).
//   G4  as G2 with 2048 * 4^k; h = 16 (seq_len = 2^30: 11 groups).
// Returns false for another name.
bool SpPreset(const std::string& name, int64_t seq_len, SpProblem* problem);

// Returns the groups of docs/ARCHITECTURE.md section 1: heads split
// front-loaded, offset i mod r_i; what attention's PartitionHeads computes.
std::vector<kernels::GroupParams> ModelGroups(const SpProblem& problem);

// One rank's payload bytes of one call, the agreement excluded.
struct RankTraffic {
  uint64_t forward_sent = 0;
  uint64_t forward_received = 0;
  uint64_t backward_sent = 0;
  uint64_t backward_received = 0;
};

// One rank's work and the largest buffers one shared segment needs.
struct RankWork {
  // 4 * batch * d * sum over groups of heads * (query rows x keys each
  // attends): the rows this rank computes, causal or not.
  double forward_flops = 0.0;
  // The K/V rows received or forwarded at once (all-gather: the gathered
  // segment; ring: two blocks), forward; backward adds the key-gradient
  // buffers (all-gather: gathered dK/dV in the dtype and the pieces
  // received; ring: two slots of float32 dK/dV and one dtype piece).
  uint64_t forward_buffer_bytes = 0;
  uint64_t backward_buffer_bytes = 0;
};

RankTraffic ModelTraffic(const SpProblem& problem, SpAlgorithm algorithm,
                         int rank);
RankWork ModelWork(const SpProblem& problem, SpAlgorithm algorithm, int rank);

}  // namespace tools
}  // namespace dilated

#endif  // TOOLS_SEQUENCE_PARALLEL_TRAFFIC_H_
