#include "tools/sequence_parallel_traffic.h"

#include <algorithm>

#include "distributed/shard_plan.h"

namespace dilated {
namespace tools {
namespace {

using distributed::GroupPlan;
using distributed::Run;
using distributed::SharedSegment;
using kernels::GroupParams;

kernels::ForwardParams PlanParams(const SpProblem& problem) {
  kernels::ForwardParams params{};
  const std::vector<GroupParams> groups = ModelGroups(problem);
  params.num_groups = static_cast<int>(groups.size());
  std::copy(groups.begin(), groups.end(), params.groups);
  return params;
}

std::vector<GroupPlan> Plan(const SpProblem& problem, int rank) {
  return distributed::PlanShard(PlanParams(problem), problem.placement,
                                problem.seq_len / problem.ranks, rank,
                                problem.ranks);
}

// The end of the keys `rank`'s runs attend, as the shard runner decides it.
int64_t KeyEnd(const SpProblem& problem, const SharedSegment& segment,
               int rank) {
  if (!problem.is_causal) return segment.length;
  int64_t end = 0;
  for (const Run& run : segment.runs) {
    if (run.rank == rank) end = std::max(end, run.end);
  }
  return end;
}

// Whether the segment runs on the ring path: ring chosen and equal blocks.
bool RunsRing(SpAlgorithm algorithm, const SharedSegment& segment) {
  return algorithm == SpAlgorithm::kRing && segment.EqualBlocks();
}

// Rows this rank holds of a segment.
int64_t MyRows(const SharedSegment& segment) {
  int64_t rows = 0;
  for (int index : segment.mine) rows += segment.runs[index].size();
  return rows;
}

// Query-key pairs of `rows` query rows from row `begin` of a segment of
// `length` rows.
double Pairs(bool is_causal, int64_t begin, int64_t rows, int64_t length) {
  if (!is_causal) return static_cast<double>(rows) * length;
  const double end = static_cast<double>(begin + rows);
  return (end * (end + 1) - static_cast<double>(begin) * (begin + 1)) / 2;
}

}  // namespace

bool SpPreset(const std::string& name, int64_t seq_len, SpProblem* problem) {
  SpProblem& p = *problem;
  p.seq_len = seq_len;
  p.segment_lengths.clear();
  p.dilation_rates.clear();
  if (name == "A" || name == "L") {
    p.num_heads = 8;
    p.segment_lengths = name == "A" ? std::vector<int64_t>{2048, 4096, 8192}
                                    : std::vector<int64_t>{2048, 8192, seq_len};
    p.dilation_rates = name == "A" ? std::vector<int64_t>{1, 2, 4}
                                   : std::vector<int64_t>{1, 4, 16};
    return true;
  }
  if (name != "G2" && name != "G4") return false;
  p.num_heads = name == "G2" ? 32 : 16;
  const int64_t ratio = name == "G2" ? 2 : 4;
  for (int64_t w = 2048; w < seq_len; w *= ratio) {
    p.segment_lengths.push_back(w);
  }
  p.segment_lengths.push_back(seq_len);
  for (int64_t w : p.segment_lengths) {
    p.dilation_rates.push_back(std::max<int64_t>(1, w / 2048));
  }
  return true;
}

std::vector<GroupParams> ModelGroups(const SpProblem& problem) {
  const int64_t count = static_cast<int64_t>(problem.segment_lengths.size());
  std::vector<GroupParams> groups(count);
  int64_t head_begin = 0;
  for (int64_t i = 0; i < count; ++i) {
    GroupParams& g = groups[i];
    g.head_begin = head_begin;
    g.num_heads =
        problem.num_heads / count + (i < problem.num_heads % count ? 1 : 0);
    g.segment_length = problem.segment_lengths[i];
    g.dilation_rate = problem.dilation_rates[i];
    g.offset = i % g.dilation_rate;
    g.positions = kernels::SegmentPositions(g, g.segment_length);
    head_begin += g.num_heads;
  }
  return groups;
}

RankTraffic ModelTraffic(const SpProblem& problem, SpAlgorithm algorithm,
                         int rank) {
  RankTraffic traffic;
  const kernels::ForwardParams params = PlanParams(problem);
  for (const GroupPlan& plan : Plan(problem, rank)) {
    const GroupParams& g = params.groups[plan.group];
    // Bytes of `rows` rows of the group's heads at `element` bytes.
    const auto bytes = [&](int64_t rows, int64_t element) {
      return static_cast<uint64_t>(rows * problem.batch * g.num_heads *
                                   problem.head_dim * element);
    };
    for (const SharedSegment& segment : plan.shared) {
      if (segment.mine.empty()) continue;  // Holds no row: sends nothing.
      if (RunsRing(algorithm, segment)) {
        const uint64_t holders = segment.Holders().size();
        const int64_t block = MyRows(segment);
        const uint64_t kv = (holders - 1) * 2 * bytes(block, problem.kv_bytes);
        // H hops of float32 dK and dV; none when this rank is alone.
        const uint64_t grads = holders > 1 ? holders * 2 * bytes(block, 4) : 0;
        traffic.forward_sent += kv;
        traffic.forward_received += kv;
        traffic.backward_sent += kv + grads;
        traffic.backward_received += kv + grads;
        continue;
      }
      const int64_t key_end = KeyEnd(problem, segment, rank);
      for (int peer : segment.Holders()) {
        if (peer == rank) continue;
        const int64_t peer_key_end = KeyEnd(problem, segment, peer);
        for (const Run& run : segment.runs) {
          if (run.rank == rank && run.begin < peer_key_end) {
            // The gather, in forward and again in backward; the peer's
            // gradients of this run come back.
            const uint64_t sent = 2 * bytes(run.size(), problem.kv_bytes);
            traffic.forward_sent += sent;
            traffic.backward_sent += sent;
            traffic.backward_received +=
                2 * bytes(run.size(), problem.grad_bytes);
          }
          if (run.rank == peer && run.begin < key_end) {
            const uint64_t received = 2 * bytes(run.size(), problem.kv_bytes);
            traffic.forward_received += received;
            traffic.backward_received += received;
            // The gradients of the peer's run go back to it.
            traffic.backward_sent += 2 * bytes(run.size(), problem.grad_bytes);
          }
        }
      }
    }
  }
  return traffic;
}

RankWork ModelWork(const SpProblem& problem, SpAlgorithm algorithm, int rank) {
  RankWork work;
  const kernels::ForwardParams params = PlanParams(problem);
  double pairs_times_heads = 0.0;
  for (const GroupPlan& plan : Plan(problem, rank)) {
    const GroupParams& g = params.groups[plan.group];
    const int64_t s = g.segment_length;
    // Whole segments of each local range: full ones, then the sequence's
    // partial last one.
    double pairs = 0.0;
    for (const distributed::RowRange& range : plan.local) {
      const int64_t local = range.end - range.begin;
      const int64_t full = local / s;
      const int64_t rows = kernels::SegmentPositions(g, s);
      pairs += full * Pairs(problem.is_causal, 0, rows, rows);
      const int64_t rest = local % s;
      if (rest > 0) {
        const int64_t last = kernels::SegmentPositions(g, rest);
        pairs += Pairs(problem.is_causal, 0, last, last);
      }
    }
    const auto bytes = [&](int64_t rows, int64_t element) {
      return static_cast<uint64_t>(rows * problem.batch * g.num_heads *
                                   problem.head_dim * element);
    };
    for (const SharedSegment& segment : plan.shared) {
      if (segment.mine.empty()) continue;
      for (int index : segment.mine) {
        const Run& run = segment.runs[index];
        pairs +=
            Pairs(problem.is_causal, run.begin, run.size(), segment.length);
      }
      const int64_t block = MyRows(segment);
      uint64_t forward = 0;
      uint64_t backward = 0;
      if (RunsRing(algorithm, segment)) {
        // Two blocks of K and V; backward: two slots of K, V (dtype) and
        // dK, dV (float32), and the dtype pieces of one run.
        forward = 2 * 2 * bytes(block, problem.kv_bytes);
        backward =
            2 * (2 * bytes(block, problem.kv_bytes) + 2 * bytes(block, 4)) +
            3 * bytes(segment.runs.front().size(), problem.kv_bytes);
      } else {
        const int64_t key_end = KeyEnd(problem, segment, rank);
        // Gathered K, V; backward: also their float32 gradient sums, their
        // dtype copies and the gradients other ranks send back.
        int64_t returned = 0;
        for (int peer : segment.Holders()) {
          if (peer == rank) continue;
          for (int index : segment.mine) {
            if (segment.runs[index].begin < KeyEnd(problem, segment, peer)) {
              returned += segment.runs[index].size();
            }
          }
        }
        forward = 2 * bytes(key_end, problem.kv_bytes);
        backward = 2 * forward + 2 * bytes(key_end, 4) +
                   2 * bytes(returned, problem.kv_bytes);
      }
      work.forward_buffer_bytes = std::max(work.forward_buffer_bytes, forward);
      work.backward_buffer_bytes =
          std::max(work.backward_buffer_bytes, backward);
    }
    pairs_times_heads += pairs * g.num_heads;
  }
  work.forward_flops =
      4.0 * problem.batch * problem.head_dim * pairs_times_heads;
  return work;
}

}  // namespace tools
}  // namespace dilated
