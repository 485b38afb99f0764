#include "attention/longnet.h"

#include <algorithm>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "attention/attention.h"
#include "attention/longnet_device.h"
#include "attention/registry.h"
#include "attention/workspace.h"
#include "factory/status_macros.h"
#include "kernels/cpu/flash_attention.h"
#include "kernels/cpu/longnet_merge.h"
#include "kernels/cpu/row_io.h"
#include "kernels/longnet_params.h"

namespace dilated {
namespace {

using kernels::BackwardParams;
using kernels::ForwardParams;
using kernels::TensorParams;

int64_t ElementSize(kernels::DataType dtype) {
  return dtype == kernels::DataType::kFloat32 ? 4 : 2;
}

// Rows of the tensors' row axes together: batch * seq, or total when packed.
int64_t StorageRows(const ForwardParams& p) {
  return kernels::StorageBatch(p) * p.seq_len;
}

// A contiguous [batch, seq, heads, head_dim] (or packed) tensor at `data`.
TensorParams ContiguousLike(const ForwardParams& p, void* data) {
  const int64_t row = p.num_heads * p.head_dim;
  return TensorParams{data, kernels::IsPacked(p) ? 0 : p.seq_len * row, row,
                      p.head_dim};
}

// One branch's kernel parameters: `base` with the branch's groups, no 1/G.
ForwardParams BranchParams(const ForwardParams& base, int64_t segment_length,
                           int64_t rate) {
  ForwardParams p = base;
  const std::vector<kernels::GroupParams> groups =
      LongNetBranchGroups(segment_length, rate, base.num_heads);
  p.num_groups = static_cast<int32_t>(groups.size());
  for (size_t g = 0; g < groups.size(); ++g) p.groups[g] = groups[g];
  p.output_scale = 1.0f;
  return p;
}

// Scratch for the branches: `count` outputs like q and `count` lse arrays,
// one after the other in one host workspace.
struct BranchBuffers {
  static absl::StatusOr<BranchBuffers> Allocate(memory::Allocator* allocator,
                                                const ForwardParams& p,
                                                int64_t count) {
    const int64_t elements = StorageRows(p) * p.num_heads * p.head_dim;
    // Tensors in 16-float (64-byte) steps.
    const int64_t tensor_floats =
        (elements * ElementSize(p.dtype) / 4 + 16) / 16 * 16;
    const int64_t lse_floats = (StorageRows(p) * p.num_heads + 15) / 16 * 16;
    DA_ASSIGN_OR_RETURN(HostWorkspace memory,
                        HostWorkspace::Allocate(
                            allocator, count * (tensor_floats + lse_floats)));
    BranchBuffers buffers{std::move(memory), {}, {}};
    float* next = buffers.memory.data();
    for (int64_t i = 0; i < count; ++i) {
      buffers.tensors.push_back(ContiguousLike(p, next));
      next += tensor_floats;
    }
    for (int64_t i = 0; i < count; ++i) {
      buffers.lse.push_back(next);
      next += lse_floats;
    }
    return buffers;
  }

  HostWorkspace memory;
  std::vector<TensorParams> tensors;
  std::vector<float*> lse;
};

class LongNetAttention : public Attention {
 public:
  explicit LongNetAttention(const AttentionConfig& config)
      : Attention("longnet", config) {}

 private:
  absl::Status CheckCall(const ForwardParams& params,
                         const Device& device) const {
    if (device.type != DeviceType::kCpu &&
        DeviceKernels<LongNetDeviceKernels>::Find(device.type) == nullptr) {
      return absl::FailedPreconditionError(
          absl::StrCat("'longnet' has no kernel for ", DeviceName(device),
                       " tensors in this build"));
    }
    for (int i = 0; i < config().num_groups(); ++i) {
      const int64_t groups =
          LongNetBranchGroups(config().segment_lengths[i],
                              config().dilation_rates[i], params.num_heads)
              .size();
      if (groups > kernels::kMaxGroups) {
        return absl::UnimplementedError(absl::StrCat(
            "'longnet' runs a branch in one kernel call of at most ",
            kernels::kMaxGroups, " head groups; dilation_rates[", i,
            "] = ", config().dilation_rates[i], " with ", params.num_heads,
            " heads needs ", groups));
      }
    }
    return absl::OkStatus();
  }

  ForwardParams Branch(const ForwardParams& params, int i) const {
    return BranchParams(params, config().segment_lengths[i],
                        config().dilation_rates[i]);
  }

  std::vector<ForwardParams> Branches(const ForwardParams& params) const {
    std::vector<ForwardParams> branches;
    for (int i = 0; i < config().num_groups(); ++i) {
      branches.push_back(Branch(params, i));
    }
    return branches;
  }

  absl::Status DoForward(const ForwardParams& params, const Device& device,
                         const ForwardOptions& options) override {
    DA_RETURN_IF_ERROR(CheckCall(params, device));
    DA_ASSIGN_OR_RETURN(memory::Allocator * allocator,
                        WorkspaceAllocator(device, options));
    if (device.type != DeviceType::kCpu) {
      return DeviceKernels<LongNetDeviceKernels>::Find(device.type)
          ->forward(params, Branches(params),
                    {device, options.stream, allocator});
    }
    const int count = config().num_groups();
    DA_ASSIGN_OR_RETURN(BranchBuffers branches,
                        BranchBuffers::Allocate(allocator, params, count));
    const int threads = kernels::cpu::MaxThreads();
    for (int i = 0; i < count; ++i) {
      ForwardParams branch = Branch(params, i);
      branch.out = branches.tensors[i];
      branch.lse = branches.lse[i];
      branch.lse_stride_b =
          kernels::IsPacked(params) ? 0 : params.num_heads * params.seq_len;
      branch.lse_stride_h = params.seq_len;
      DA_ASSIGN_OR_RETURN(
          HostWorkspace workspace,
          HostWorkspace::Allocate(
              allocator,
              threads * kernels::cpu::FlashForwardWorkspacePerThread(branch)));
      kernels::cpu::FlashForward(branch, workspace.data(), threads);
    }
    kernels::LongNetBranchOutputs outputs{};
    outputs.count = count;
    outputs.lse_stride_b =
        kernels::IsPacked(params) ? 0 : params.num_heads * params.seq_len;
    outputs.lse_stride_h = params.seq_len;
    for (int i = 0; i < count; ++i) {
      outputs.out[i] = branches.tensors[i];
      outputs.lse[i] = branches.lse[i];
    }
    kernels::cpu::LongNetMerge(params, outputs);
    return absl::OkStatus();
  }

  // The merged attention is one softmax over the union of the branches'
  // keys, so its gradient is the sum over branches of each branch's flash
  // backward run with the MERGED out and lse (P = exp(s - lse) is then the
  // merged probability and D = rowsum(dO * out) the merged one).
  absl::Status DoBackward(const BackwardParams& params, const Device& device,
                          const ForwardOptions& options) override {
    const ForwardParams& fp = params.forward;
    DA_RETURN_IF_ERROR(CheckCall(fp, device));
    DA_ASSIGN_OR_RETURN(memory::Allocator * allocator,
                        WorkspaceAllocator(device, options));
    if (device.type != DeviceType::kCpu) {
      return DeviceKernels<LongNetDeviceKernels>::Find(device.type)
          ->backward(params, Branches(fp), {device, options.stream, allocator});
    }
    const int count = config().num_groups();
    const int threads = kernels::cpu::MaxThreads();
    const int64_t elements = StorageRows(fp) * fp.num_heads * fp.head_dim;
    DA_ASSIGN_OR_RETURN(BranchBuffers gradients,
                        BranchBuffers::Allocate(allocator, fp, 3));
    DA_ASSIGN_OR_RETURN(
        HostWorkspace sums,
        HostWorkspace::Allocate(allocator, count > 1 ? 3 * elements : 0));
    if (count > 1) std::fill(sums.data(), sums.data() + 3 * elements, 0.0f);
    for (int i = 0; i < count; ++i) {
      BackwardParams branch = params;
      branch.forward = Branch(fp, i);
      if (count > 1) {
        branch.grad_q = gradients.tensors[0];
        branch.grad_k = gradients.tensors[1];
        branch.grad_v = gradients.tensors[2];
      }
      DA_ASSIGN_OR_RETURN(
          HostWorkspace workspace,
          HostWorkspace::Allocate(
              allocator,
              threads * kernels::cpu::FlashBackwardWorkspacePerThread(
                            branch.forward)));
      kernels::cpu::FlashBackward(branch, workspace.data(), threads);
      if (count > 1) {
        for (int t = 0; t < 3; ++t) {
          kernels::cpu::LongNetAccumulate(fp, gradients.tensors[t],
                                          sums.data() + t * elements);
        }
      }
    }
    if (count > 1) {
      kernels::cpu::LongNetStore(fp, sums.data(), params.grad_q);
      kernels::cpu::LongNetStore(fp, sums.data() + elements, params.grad_k);
      kernels::cpu::LongNetStore(fp, sums.data() + 2 * elements, params.grad_v);
    }
    return absl::OkStatus();
  }
};

absl::StatusOr<std::unique_ptr<Attention>> CreateLongNet(
    const AttentionConfig& config) {
  return std::unique_ptr<Attention>(new LongNetAttention(config));
}

}  // namespace

std::vector<kernels::GroupParams> LongNetBranchGroups(int64_t segment_length,
                                                      int64_t rate,
                                                      int64_t num_heads) {
  const int64_t per_group = (num_heads + rate - 1) / rate;
  std::vector<kernels::GroupParams> groups;
  for (int64_t c = 0; c < rate && c * per_group < num_heads; ++c) {
    kernels::GroupParams g{};
    g.head_begin = c * per_group;
    g.num_heads = std::min(per_group, num_heads - g.head_begin);
    g.segment_length = segment_length;
    g.dilation_rate = rate;
    g.offset = c;
    g.positions = kernels::SegmentPositions(g, segment_length);
    groups.push_back(g);
  }
  return groups;
}

DA_REGISTER_ATTENTION("longnet", CreateLongNet);

}  // namespace dilated
