// File: shard_plan.h
//
// Which rows of a sequence-parallel call each rank computes and which it
// needs from others. P ranks hold equal contiguous shards of a sequence of
// n = P * l positions: rank p holds positions [p * l, (p + 1) * l). For every
// group (docs/ARCHITECTURE.md section 1) a segment that lies inside the
// shard is local; a segment that crosses a shard boundary is shared by the
// ranks it spans, and each of them holds a contiguous run of the segment's
// selected rows (row j sits at position start + offset + j * rate).
//
// The plan is pure arithmetic on sizes, the same on every rank, so ranks
// agree on who sends what without talking.

#ifndef DISTRIBUTED_SHARD_PLAN_H_
#define DISTRIBUTED_SHARD_PLAN_H_

#include <cstdint>
#include <vector>

#include "kernels/dilated_params.h"

namespace dilated {
namespace distributed {

// The selected rows [begin, end) of a segment that one rank holds.
struct RankRows {
  int rank;
  int64_t begin;
  int64_t end;

  int64_t size() const { return end - begin; }
};

// A segment that crosses a shard boundary, seen from one rank.
struct SharedSegment {
  int64_t start;   // Global position of the segment's first position.
  int64_t extent;  // Positions of the segment (the last one may be partial).
  int64_t length;  // Selected rows of the segment.
  // The ranks holding at least one selected row, in rank order (their runs
  // are consecutive and cover [0, length)).
  std::vector<RankRows> holders;
  // Index of this rank in `holders`, or -1 when it holds no selected row.
  int self;
  // This rank's positions of the segment, as rows [portion_begin,
  // portion_end) of its shard: zeroed for the group's heads except where
  // selected.
  int64_t portion_begin;
  int64_t portion_end;

  // Returns whether every holder has the same number of rows (the fast
  // path: blocks attend blocks with square kernel calls).
  bool EqualBlocks() const;
};

// One group on one rank.
struct GroupPlan {
  int group;  // Index into ForwardParams::groups.
  // Shard rows [local_begin, local_end) hold whole segments of the group
  // (the last may be the sequence's partial last one): computed locally.
  int64_t local_begin;
  int64_t local_end;
  std::vector<SharedSegment> shared;  // At most two.
};

// Returns the plan of rank `rank` of `size` for a shard of `shard_len`
// positions and the groups of `params` (segment lengths over the whole
// sequence of size * shard_len positions).
std::vector<GroupPlan> PlanShard(const kernels::ForwardParams& params,
                                 int64_t shard_len, int rank, int size);

// Returns the position of selected row j of `segment` for `group`.
inline int64_t SelectedPosition(const kernels::GroupParams& group,
                                const SharedSegment& segment, int64_t j) {
  return segment.start + group.offset + j * group.dilation_rate;
}

}  // namespace distributed
}  // namespace dilated

#endif  // DISTRIBUTED_SHARD_PLAN_H_
