#include "distributed/shard_plan.h"

#include <algorithm>

namespace dilated {
namespace distributed {
namespace {

// Returns the first selected row of a segment starting at `start` whose
// position is at least `position`.
int64_t FirstRowAtOrAfter(const kernels::GroupParams& g, int64_t start,
                          int64_t position, int64_t length) {
  const int64_t relative = position - start - g.offset;
  if (relative <= 0) return 0;
  return std::min(length,
                  (relative + g.dilation_rate - 1) / g.dilation_rate);
}

SharedSegment MakeShared(const kernels::GroupParams& g, int64_t start,
                         int64_t extent, int64_t shard_len, int rank) {
  SharedSegment s;
  s.start = start;
  s.extent = extent;
  s.length = kernels::SegmentPositions(g, extent);
  s.self = -1;
  const int64_t end = start + extent;
  const int first_rank = static_cast<int>(start / shard_len);
  const int last_rank = static_cast<int>((end - 1) / shard_len);
  for (int t = first_rank; t <= last_rank; ++t) {
    const int64_t begin = FirstRowAtOrAfter(g, start, t * shard_len, s.length);
    const int64_t stop =
        FirstRowAtOrAfter(g, start, (t + 1) * shard_len, s.length);
    if (stop <= begin) continue;
    if (t == rank) s.self = static_cast<int>(s.holders.size());
    s.holders.push_back(RankRows{t, begin, stop});
  }
  const int64_t shard_begin = rank * shard_len;
  s.portion_begin = std::max(start, shard_begin) - shard_begin;
  s.portion_end = std::min(end, shard_begin + shard_len) - shard_begin;
  return s;
}

}  // namespace

bool SharedSegment::EqualBlocks() const {
  for (const RankRows& h : holders) {
    if (h.size() != holders.front().size()) return false;
  }
  return true;
}

std::vector<GroupPlan> PlanShard(const kernels::ForwardParams& params,
                                 int64_t shard_len, int rank, int size) {
  const int64_t n = shard_len * size;
  const int64_t shard_begin = rank * shard_len;
  const int64_t shard_end = shard_begin + shard_len;
  std::vector<GroupPlan> plans;
  for (int i = 0; i < params.num_groups; ++i) {
    const kernels::GroupParams& g = params.groups[i];
    const int64_t s = g.segment_length;
    GroupPlan plan;
    plan.group = i;
    // Whole segments inside the shard: those starting at or after its
    // beginning and ending (or reaching n) at or before its end.
    const int64_t first_local = (shard_begin + s - 1) / s;
    int64_t end_local = shard_end / s;  // Segments ending by shard_end...
    if (shard_end == n) end_local = (n + s - 1) / s;  // ...or at n, partial.
    if (end_local > first_local) {
      plan.local_begin = first_local * s - shard_begin;
      plan.local_end = std::min(end_local * s, n) - shard_begin;
    } else {
      plan.local_begin = plan.local_end = 0;
    }
    // Segments overlapping the shard but not inside it.
    const int64_t first = shard_begin / s;
    const int64_t last = (shard_end - 1) / s;
    for (int64_t m = first; m <= last; ++m) {
      if (m >= first_local && m < end_local) continue;
      const int64_t start = m * s;
      const int64_t extent = std::min(s, n - start);
      plan.shared.push_back(MakeShared(g, start, extent, shard_len, rank));
    }
    plans.push_back(plan);
  }
  return plans;
}

}  // namespace distributed
}  // namespace dilated
