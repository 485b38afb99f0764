#include "distributed/sequence_parallel.h"

#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "attention/registry.h"
#include "distributed/call_agreement.h"
#include "distributed/local_kernels.h"
#include "factory/status_macros.h"

namespace dilated {
namespace distributed {

SequenceParallelAttention::SequenceParallelAttention(
    std::string name, AttentionConfig config,
    SequenceParallelAlgorithm algorithm)
    : Attention(std::move(name), std::move(config)), algorithm_(algorithm) {
  if (this->config().communicator == nullptr) {
    single_process_ = CreateSingleProcessCommunicator();
  }
}

Communicator& SequenceParallelAttention::communicator() const {
  return config().communicator != nullptr ? *config().communicator
                                          : *single_process_;
}

absl::Status SequenceParallelAttention::AgreeOnCall(
    const absl::Status& checked, const kernels::ForwardParams* params,
    bool backward) {
  absl::Status local = checked;
  if (local.ok() && communicator().size() > 1 &&
      (kernels::IsPacked(*params) ||
       params->sequence.key_padding_mask != nullptr)) {
    local = absl::UnimplementedError(
        absl::StrCat("'", name(), "' over ", communicator().size(),
                     " ranks runs fixed-length input: options.cu_seqlens and "
                     "options.key_padding_mask are not supported"));
  }
  if (local.ok() && communicator().size() > 1 &&
      config().shard_placement == ShardPlacement::kZigzag &&
      params->seq_len % 2 != 0) {
    local = absl::InvalidArgumentError(
        absl::StrCat("'", name(),
                     "' with zigzag placement needs an even shard length "
                     "(q.shape[1]), got ",
                     params->seq_len));
  }
  return AgreeAcrossRanks(communicator(), local, local.ok() ? params : nullptr,
                          config().shard_placement, backward);
}

absl::StatusOr<ExecutionContext> SequenceParallelAttention::Context(
    const Device& device, const ForwardOptions& options) {
  DA_ASSIGN_OR_RETURN(memory::Allocator * workspace,
                      WorkspaceAllocator(device, options));
  return ExecutionContext{device, options.stream, workspace};
}

absl::Status SequenceParallelAttention::DoForward(
    const kernels::ForwardParams& params, const Device& device,
    const ForwardOptions& options) {
  DA_ASSIGN_OR_RETURN(ExecutionContext context, Context(device, options));
  LocalKernels local(context);
  return ShardForward(params, algorithm_, config().shard_placement,
                      communicator(), local);
}

absl::Status SequenceParallelAttention::DoBackward(
    const kernels::BackwardParams& params, const Device& device,
    const ForwardOptions& options) {
  DA_ASSIGN_OR_RETURN(ExecutionContext context, Context(device, options));
  LocalKernels local(context);
  return ShardBackward(params, algorithm_, config().shard_placement,
                       communicator(), local);
}

namespace {

absl::StatusOr<std::unique_ptr<Attention>> CreateDistributed(
    const AttentionConfig& config) {
  return std::make_unique<SequenceParallelAttention>(
      "distributed", config, SequenceParallelAlgorithm::kAllGather);
}

absl::StatusOr<std::unique_ptr<Attention>> CreateRing(
    const AttentionConfig& config) {
  return std::make_unique<SequenceParallelAttention>(
      "ring", config, SequenceParallelAlgorithm::kRing);
}

}  // namespace

DA_REGISTER_ATTENTION("distributed", CreateDistributed);
DA_REGISTER_ATTENTION("ring", CreateRing);

}  // namespace distributed
}  // namespace dilated
