// File: call_agreement.h
//
// The check every sequence-parallel call starts with: the ranks all-gather a
// small summary of their call (their own checks' outcome, the backward flag,
// shard placement, dtype, causal flag, shard shape, scale and groups) and each
// returns the same verdict:
//   - a rank whose own checks failed gets its own error; the others get
//     FailedPrecondition naming that rank;
//   - ranks that disagree get InvalidArgument naming the first field that
//     differs, the rank and both values;
//   - a rank that never makes the call leaves the others with the
//     communicator's DeadlineExceeded.

#ifndef DISTRIBUTED_CALL_AGREEMENT_H_
#define DISTRIBUTED_CALL_AGREEMENT_H_

#include <cstddef>

#include "absl/status/status.h"
#include "attention/config.h"
#include "distributed/communicator.h"
#include "kernels/dilated_params.h"

namespace dilated {
namespace distributed {

// Returns the bytes each rank contributes to the agreement's all-gather
// (what the byte counters show for it: size - 1 times this, each way).
size_t AgreementBytes();

// `params` is null exactly when `local` is not OK.
absl::Status AgreeAcrossRanks(Communicator& comm, const absl::Status& local,
                              const kernels::ForwardParams* params,
                              ShardPlacement placement, bool backward);

}  // namespace distributed
}  // namespace dilated

#endif  // DISTRIBUTED_CALL_AGREEMENT_H_
