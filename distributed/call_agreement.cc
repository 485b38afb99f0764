#include "distributed/call_agreement.h"

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace dilated {
namespace distributed {
namespace {

// What each rank contributes; a plain struct so that it travels as bytes.
struct CallSummary {
  int64_t status_code;
  int64_t backward;
  int64_t placement;
  int64_t dtype;
  int64_t is_causal;
  int64_t batch;
  int64_t shard_len;
  int64_t num_heads;
  int64_t head_dim;
  int64_t softmax_scale_bits;
  int64_t num_groups;
  int64_t segment_lengths[kernels::kMaxGroups];
  int64_t dilation_rates[kernels::kMaxGroups];
};

CallSummary Summarize(const absl::Status& local,
                      const kernels::ForwardParams* p, ShardPlacement placement,
                      bool backward) {
  CallSummary s;
  std::memset(&s, 0, sizeof(s));
  s.status_code = static_cast<int64_t>(local.code());
  s.backward = backward ? 1 : 0;
  s.placement = static_cast<int64_t>(placement);
  if (p == nullptr) return s;
  s.dtype = static_cast<int64_t>(p->dtype);
  s.is_causal = p->is_causal ? 1 : 0;
  s.batch = p->batch;
  s.shard_len = p->seq_len;
  s.num_heads = p->num_heads;
  s.head_dim = p->head_dim;
  uint32_t bits;
  std::memcpy(&bits, &p->softmax_scale, sizeof(bits));
  s.softmax_scale_bits = bits;
  s.num_groups = p->num_groups;
  for (int i = 0; i < p->num_groups; ++i) {
    s.segment_lengths[i] = p->groups[i].segment_length;
    s.dilation_rates[i] = p->groups[i].dilation_rate;
  }
  return s;
}

std::string Groups(const int64_t* values, int64_t count) {
  return absl::StrCat(
      "{", absl::StrJoin(std::vector<int64_t>(values, values + count), ","),
      "}");
}

// Returns the name of the first field in which `a` and `b` differ and their
// values, or an empty name.
struct Difference {
  std::string field;
  std::string a;
  std::string b;
};

Difference FirstDifference(const CallSummary& a, const CallSummary& b) {
  const struct {
    const char* name;
    int64_t CallSummary::*field;
  } fields[] = {
      {"pass (0 forward, 1 backward)", &CallSummary::backward},
      {"shard_placement (0 contiguous, 1 zigzag)", &CallSummary::placement},
      {"dtype", &CallSummary::dtype},
      {"is_causal", &CallSummary::is_causal},
      {"batch", &CallSummary::batch},
      {"shard length (q.shape[1])", &CallSummary::shard_len},
      {"num_heads", &CallSummary::num_heads},
      {"head_dim", &CallSummary::head_dim},
      {"softmax_scale (float bits)", &CallSummary::softmax_scale_bits},
      {"number of groups", &CallSummary::num_groups},
  };
  for (const auto& f : fields) {
    if (a.*(f.field) != b.*(f.field)) {
      return Difference{f.name, absl::StrCat(a.*(f.field)),
                        absl::StrCat(b.*(f.field))};
    }
  }
  const int64_t groups = a.num_groups;
  if (!std::equal(a.segment_lengths, a.segment_lengths + groups,
                  b.segment_lengths) ||
      !std::equal(a.dilation_rates, a.dilation_rates + groups,
                  b.dilation_rates)) {
    return Difference{"segment_lengths/dilation_rates",
                      absl::StrCat(Groups(a.segment_lengths, groups), "/",
                                   Groups(a.dilation_rates, groups)),
                      absl::StrCat(Groups(b.segment_lengths, groups), "/",
                                   Groups(b.dilation_rates, groups))};
  }
  return Difference{};
}

}  // namespace

size_t AgreementBytes() { return sizeof(CallSummary); }

absl::Status AgreeAcrossRanks(Communicator& comm, const absl::Status& local,
                              const kernels::ForwardParams* params,
                              ShardPlacement placement, bool backward) {
  if (comm.size() == 1) return local;
  const CallSummary mine = Summarize(local, params, placement, backward);
  std::vector<CallSummary> all(comm.size());
  const absl::Status gathered = comm.AllGather(
      &mine, all.data(), sizeof(CallSummary), Buffers{Device::Cpu(), nullptr});
  if (!gathered.ok()) {
    return absl::Status(
        gathered.code(),
        absl::StrCat("sequence-parallel call: the ranks could not agree on "
                     "the call: ",
                     gathered.message()));
  }
  if (!local.ok()) return local;
  for (int r = 0; r < comm.size(); ++r) {
    if (all[r].status_code != 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("sequence-parallel call refused: rank ", r, " of ",
                       comm.size(), " failed its own checks (",
                       absl::StatusCodeToString(
                           static_cast<absl::StatusCode>(all[r].status_code)),
                       "); see that rank's error"));
    }
  }
  for (int r = 1; r < comm.size(); ++r) {
    const Difference d = FirstDifference(all[0], all[r]);
    if (!d.field.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "sequence-parallel call: ranks disagree on ", d.field,
          ": rank 0 has ", d.a, ", rank ", r, " has ", d.b,
          "; every rank must call with the same configuration and shapes"));
    }
  }
  return absl::OkStatus();
}

}  // namespace distributed
}  // namespace dilated
