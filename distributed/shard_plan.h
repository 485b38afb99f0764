// File: shard_plan.h
//
// Which rows of a sequence-parallel call each rank computes and which it
// needs from others. P ranks hold equal shards of l positions of a sequence
// of n = P * l positions; a shard is one or two contiguous pieces of the
// sequence (ShardPlacement: contiguous, or zigzag). For every group
// (docs/ARCHITECTURE.md section 1) a segment that lies inside one piece is
// local; a segment that crosses a piece boundary is shared, and its
// selected rows (row j at position start + offset + j * rate) form
// consecutive runs, each held by one piece of one rank.
//
// The plan is pure arithmetic on sizes, the same on every rank, so ranks
// agree on who sends what without talking.

#ifndef DISTRIBUTED_SHARD_PLAN_H_
#define DISTRIBUTED_SHARD_PLAN_H_

#include <cstdint>
#include <vector>

#include "attention/config.h"
#include "kernels/dilated_params.h"

namespace dilated {
namespace distributed {

// Global positions [begin, end) of the sequence, held at shard rows
// [row, row + end - begin).
struct ShardPiece {
  int64_t begin;
  int64_t end;
  int64_t row;
};

// Returns the pieces of rank `rank` of `size`, in shard-row order.
std::vector<ShardPiece> ShardPieces(ShardPlacement placement, int64_t shard_len,
                                    int rank, int size);

// The selected rows [begin, end) of a shared segment that one piece holds.
struct Run {
  int rank;
  int64_t begin;
  int64_t end;
  // Shard row (on `rank`) of the run's first selected row.
  int64_t first_row;

  int64_t size() const { return end - begin; }
};

// Shard rows [begin, end) of this rank that lie in a segment.
struct RowRange {
  int64_t begin;
  int64_t end;
};

// A segment that crosses a piece boundary, seen from one rank.
struct SharedSegment {
  int64_t start;   // Global position of the segment's first position.
  int64_t extent;  // Positions of the segment (the last one may be partial).
  int64_t length;  // Selected rows of the segment.
  // Every run, in row order (consecutive, covering [0, length)).
  std::vector<Run> runs;
  // Indices into `runs` of this rank's runs (none, one or two).
  std::vector<int> mine;
  // This rank's positions of the segment: zeroed for the group's heads
  // except where selected.
  std::vector<RowRange> portions;

  // Returns the ranks holding runs, ascending.
  std::vector<int> Holders() const;

  // Returns whether every run has the same size and every holder the same
  // number of runs (the fast path: runs attend runs with square kernel
  // calls, and a ring step moves equal blocks).
  bool EqualBlocks() const;
};

// One group on one rank.
struct GroupPlan {
  int group;  // Index into ForwardParams::groups.
  // Shard rows holding whole segments of the group (the last may be the
  // sequence's partial last one), one range per piece: computed locally.
  std::vector<RowRange> local;
  std::vector<SharedSegment> shared;
};

// Returns the plan of rank `rank` of `size` for shards of `shard_len`
// positions placed by `placement`, for the groups of `params` (segment
// lengths over the whole sequence of size * shard_len positions).
// REQUIRES: shard_len even for ShardPlacement::kZigzag.
std::vector<GroupPlan> PlanShard(const kernels::ForwardParams& params,
                                 ShardPlacement placement, int64_t shard_len,
                                 int rank, int size);

}  // namespace distributed
}  // namespace dilated

#endif  // DISTRIBUTED_SHARD_PLAN_H_
