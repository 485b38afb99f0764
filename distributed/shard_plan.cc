#include "distributed/shard_plan.h"

#include <algorithm>
#include <map>

namespace dilated {
namespace distributed {
namespace {

// Returns the first selected row of a segment starting at `start` whose
// position is at least `position`.
int64_t FirstRowAtOrAfter(const kernels::GroupParams& g, int64_t start,
                          int64_t position, int64_t length) {
  const int64_t relative = position - start - g.offset;
  if (relative <= 0) return 0;
  return std::min(length, (relative + g.dilation_rate - 1) / g.dilation_rate);
}

SharedSegment MakeShared(const kernels::GroupParams& g, int64_t start,
                         int64_t extent, ShardPlacement placement,
                         int64_t shard_len, int rank, int size) {
  SharedSegment s;
  s.start = start;
  s.extent = extent;
  s.length = kernels::SegmentPositions(g, extent);
  const int64_t end = start + extent;
  for (int t = 0; t < size; ++t) {
    for (const ShardPiece& piece : ShardPieces(placement, shard_len, t, size)) {
      const int64_t begin = std::max(start, piece.begin);
      const int64_t stop = std::min(end, piece.end);
      if (stop <= begin) continue;
      if (t == rank) {
        s.portions.push_back(RowRange{begin - piece.begin + piece.row,
                                      stop - piece.begin + piece.row});
      }
      const int64_t first = FirstRowAtOrAfter(g, start, begin, s.length);
      const int64_t last = FirstRowAtOrAfter(g, start, stop, s.length);
      if (last <= first) continue;
      const int64_t position = start + g.offset + first * g.dilation_rate;
      s.runs.push_back(Run{t, first, last, position - piece.begin + piece.row});
    }
  }
  std::sort(s.runs.begin(), s.runs.end(),
            [](const Run& a, const Run& b) { return a.begin < b.begin; });
  for (size_t i = 0; i < s.runs.size(); ++i) {
    if (s.runs[i].rank == rank) s.mine.push_back(static_cast<int>(i));
  }
  return s;
}

}  // namespace

std::vector<ShardPiece> ShardPieces(ShardPlacement placement, int64_t shard_len,
                                    int rank, int size) {
  if (placement == ShardPlacement::kContiguous) {
    return {ShardPiece{rank * shard_len, (rank + 1) * shard_len, 0}};
  }
  const int64_t chunk = shard_len / 2;
  const int64_t second = 2 * size - 1 - rank;
  return {ShardPiece{rank * chunk, (rank + 1) * chunk, 0},
          ShardPiece{second * chunk, (second + 1) * chunk, chunk}};
}

std::vector<int> SharedSegment::Holders() const {
  std::vector<int> ranks;
  for (const Run& run : runs) ranks.push_back(run.rank);
  std::sort(ranks.begin(), ranks.end());
  ranks.erase(std::unique(ranks.begin(), ranks.end()), ranks.end());
  return ranks;
}

bool SharedSegment::EqualBlocks() const {
  std::map<int, int> runs_per_rank;
  for (const Run& run : runs) {
    if (run.size() != runs.front().size()) return false;
    ++runs_per_rank[run.rank];
  }
  for (const auto& [rank, count] : runs_per_rank) {
    if (count != runs_per_rank.begin()->second) return false;
  }
  return true;
}

std::vector<GroupPlan> PlanShard(const kernels::ForwardParams& params,
                                 ShardPlacement placement, int64_t shard_len,
                                 int rank, int size) {
  const int64_t n = shard_len * size;
  const std::vector<ShardPiece> pieces =
      ShardPieces(placement, shard_len, rank, size);
  std::vector<GroupPlan> plans;
  for (int i = 0; i < params.num_groups; ++i) {
    const kernels::GroupParams& g = params.groups[i];
    const int64_t s = g.segment_length;
    GroupPlan plan;
    plan.group = i;
    std::vector<int64_t> shared_segments;
    for (const ShardPiece& piece : pieces) {
      // Whole segments inside the piece: those starting at or after its
      // beginning and ending (or reaching n) at or before its end.
      const int64_t first_local = (piece.begin + s - 1) / s;
      const int64_t end_local =
          piece.end == n ? (n + s - 1) / s : piece.end / s;
      if (end_local > first_local) {
        plan.local.push_back(
            RowRange{first_local * s - piece.begin + piece.row,
                     std::min(end_local * s, n) - piece.begin + piece.row});
      }
      for (int64_t m = piece.begin / s; m <= (piece.end - 1) / s; ++m) {
        if (m < first_local || m >= end_local) shared_segments.push_back(m);
      }
    }
    // A segment may cross both pieces of a zigzag shard: plan it once.
    std::sort(shared_segments.begin(), shared_segments.end());
    shared_segments.erase(
        std::unique(shared_segments.begin(), shared_segments.end()),
        shared_segments.end());
    for (int64_t m : shared_segments) {
      const int64_t start = m * s;
      plan.shared.push_back(MakeShared(g, start, std::min(s, n - start),
                                       placement, shard_len, rank, size));
    }
    plans.push_back(plan);
  }
  return plans;
}

}  // namespace distributed
}  // namespace dilated
