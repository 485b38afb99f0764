#include "attention/block_sparse.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "attention/block_sparse_device.h"
#include "attention/block_sparse_packed.h"
#include "attention/params_builder.h"
#include "attention/registry.h"
#include "attention/workspace.h"
#include "factory/status_macros.h"
#include "kernels/cpu/block_sparse_attention.h"
#include "kernels/cpu/row_io.h"

namespace dilated {
namespace {

// The front end's checks need a group; block_sparse has none of its own.
AttentionConfig WithOneGroup(AttentionConfig config) {
  config.segment_lengths = {1};
  config.dilation_rates = {1};
  return config;
}

const kernels::ForwardParams& ForwardOf(const kernels::ForwardParams& p) {
  return p;
}
const kernels::ForwardParams& ForwardOf(const kernels::BackwardParams& p) {
  return p.forward;
}
kernels::ForwardParams& MutableForwardOf(kernels::ForwardParams& p) {
  return p;
}
kernels::ForwardParams& MutableForwardOf(kernels::BackwardParams& p) {
  return p.forward;
}

absl::Status ForwardOnCpu(const kernels::ForwardParams& params,
                          const kernels::BlockLists& lists,
                          memory::Allocator* allocator) {
  const int threads = kernels::cpu::MaxThreads();
  DA_ASSIGN_OR_RETURN(
      HostWorkspace workspace,
      HostWorkspace::Allocate(
          allocator, threads * kernels::cpu::BlockSparseWorkspacePerThread(
                                   params, lists)));
  kernels::cpu::BlockSparseForward(params, lists, workspace.data(), threads);
  return absl::OkStatus();
}

absl::Status BackwardOnCpu(const kernels::BackwardParams& params,
                           const kernels::BlockLists& lists,
                           memory::Allocator* allocator) {
  const int threads = kernels::cpu::MaxThreads();
  DA_ASSIGN_OR_RETURN(HostWorkspace workspace,
                      HostWorkspace::Allocate(
                          allocator, kernels::cpu::BlockSparseBackwardWorkspace(
                                         params.forward, lists, threads)));
  kernels::cpu::BlockSparseBackward(params, lists, workspace.data(), threads);
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Attention>> CreateBlockSparse(
    const AttentionConfig& config) {
  if (absl::Status s = config.block_sparse.Validate(); !s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("block_sparse: ", s.message()));
  }
  return std::unique_ptr<Attention>(new BlockSparseAttention(config));
}

}  // namespace

BlockSparseAttention::BlockSparseAttention(const AttentionConfig& config)
    : Attention("block_sparse", WithOneGroup(config)),
      lists_(config.block_sparse) {}

absl::StatusOr<const BlockSparseDeviceKernels*>
BlockSparseAttention::KernelsFor(const Device& device) {
  if (device.type == DeviceType::kCpu) return nullptr;
  const BlockSparseDeviceKernels* kernels =
      DeviceKernels<BlockSparseDeviceKernels>::Find(device.type);
  if (kernels == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("'block_sparse' has no kernel for ", DeviceName(device),
                     " tensors in this build"));
  }
  return kernels;
}

template <typename Params>
absl::StatusOr<std::vector<std::shared_ptr<const BlockListStorage>>>
BlockSparseAttention::ListsForSequences(
    const std::vector<PackedSequence<Params>>& sequences) {
  std::vector<std::shared_ptr<const BlockListStorage>> storages;
  for (const PackedSequence<Params>& s : sequences) {
    const kernels::ForwardParams& p = ForwardOf(s.params);
    absl::StatusOr<std::shared_ptr<const BlockListStorage>> storage =
        lists_.Get(p.seq_len, p.num_heads);
    if (!storage.ok()) {
      return absl::Status(storage.status().code(),
                          absl::StrCat("cu_seqlens: sequence ", s.index, ": ",
                                       storage.status().message()));
    }
    storages.push_back(*std::move(storage));
  }
  return storages;
}

template <typename Params, typename Split, typename Run>
absl::Status BlockSparseAttention::RunCall(
    const Params& params, const BlockSparseDeviceKernels* kernels,
    const ExecutionContext& context, Split split, Run run) {
  const kernels::ForwardParams& p = ForwardOf(params);
  if (!kernels::IsPacked(p)) {
    DA_ASSIGN_OR_RETURN(std::shared_ptr<const BlockListStorage> storage,
                        lists_.Get(p.seq_len, p.num_heads));
    return run(params, *storage);
  }
  // A packed call runs one fixed-length call per sequence, cut where the
  // host reads cu_seqlens.
  Params readable = params;
  std::vector<int32_t> offsets;
  if (kernels != nullptr) {
    DA_ASSIGN_OR_RETURN(offsets, kernels->read_cu_seqlens(p, context));
    kernels::ForwardParams& forward = MutableForwardOf(readable);
    forward.sequence.cu_seqlens = offsets.data();
    DA_RETURN_IF_ERROR(CheckHostCuSeqlens(forward));
  }
  DA_ASSIGN_OR_RETURN(const auto sequences,
                      split(readable, lists_.config().block_size));
  // Every list first, so that a bad sequence leaves the outputs untouched.
  DA_ASSIGN_OR_RETURN(
      const std::vector<std::shared_ptr<const BlockListStorage>> storages,
      ListsForSequences(sequences));
  for (size_t i = 0; i < sequences.size(); ++i) {
    DA_RETURN_IF_ERROR(run(sequences[i].params, *storages[i]));
  }
  return absl::OkStatus();
}

absl::Status BlockSparseAttention::DoForward(
    const kernels::ForwardParams& params, const Device& device,
    const ForwardOptions& options) {
  DA_ASSIGN_OR_RETURN(memory::Allocator * allocator,
                      WorkspaceAllocator(device, options));
  DA_ASSIGN_OR_RETURN(const BlockSparseDeviceKernels* kernels,
                      KernelsFor(device));
  const ExecutionContext context{device, options.stream, allocator};
  return RunCall(
      params, kernels, context, &SplitPackedForward,
      [&](const kernels::ForwardParams& p, const BlockListStorage& lists) {
        return kernels == nullptr ? ForwardOnCpu(p, lists.Lists(), allocator)
                                  : kernels->forward(p, lists, context);
      });
}

absl::Status BlockSparseAttention::DoBackward(
    const kernels::BackwardParams& params, const Device& device,
    const ForwardOptions& options) {
  DA_ASSIGN_OR_RETURN(memory::Allocator * allocator,
                      WorkspaceAllocator(device, options));
  DA_ASSIGN_OR_RETURN(const BlockSparseDeviceKernels* kernels,
                      KernelsFor(device));
  const ExecutionContext context{device, options.stream, allocator};
  return RunCall(
      params, kernels, context, &SplitPackedBackward,
      [&](const kernels::BackwardParams& p, const BlockListStorage& lists) {
        return kernels == nullptr ? BackwardOnCpu(p, lists.Lists(), allocator)
                                  : kernels->backward(p, lists, context);
      });
}

absl::StatusOr<BlockProbabilities> BlockSparseAttention::Probabilities(
    const TensorView& q, const TensorView& k, const TensorView& lse,
    const ForwardOptions& options) {
  if (q.device.type != DeviceType::kCpu) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Probabilities reads CPU tensors; q is on ", DeviceName(q.device)));
  }
  // q stands in for v and out: only shapes are checked, nothing is written.
  DA_ASSIGN_OR_RETURN(const kernels::ForwardParams p,
                      MakeForwardParams(config(), q, k, q, q, &lse, options));
  if (kernels::IsPacked(p)) {
    return absl::UnimplementedError(
        "Probabilities takes [batch, seq, heads, head_dim] tensors, not packed "
        "ones (cu_seqlens)");
  }
  DA_ASSIGN_OR_RETURN(std::shared_ptr<const BlockListStorage> storage,
                      lists_.Get(p.seq_len, p.num_heads));
  const kernels::BlockLists lists = storage->Lists();
  const int64_t bs = lists.block_size;
  const int64_t nb = lists.num_blocks;
  BlockProbabilities result;
  result.block_size = bs;
  result.num_blocks = nb;
  std::vector<uint8_t> any(nb * nb, 0);
  for (int64_t h = 0; h < lists.heads; ++h) {
    for (int64_t i = 0; i < nb; ++i) {
      const int64_t list = h * nb + i;
      for (int32_t e = lists.row_begin[list]; e < lists.row_begin[list + 1];
           ++e) {
        any[i * nb + lists.row_blocks[e]] = 1;
      }
    }
  }
  for (int64_t i = 0; i < nb; ++i) {
    for (int64_t j = 0; j < nb; ++j) {
      if (any[i * nb + j]) result.blocks.emplace_back(i, j);
    }
  }
  const int64_t pair_values = p.batch * p.num_heads * bs * bs;
  result.values.assign(result.blocks.size() * pair_values, 0.0f);
  std::vector<float> q_row(p.head_dim), k_row(p.head_dim);
  const uint8_t* mask = p.sequence.key_padding_mask;
  for (size_t e = 0; e < result.blocks.size(); ++e) {
    const auto [i, j] = result.blocks[e];
    for (int64_t b = 0; b < p.batch; ++b) {
      for (int64_t h = 0; h < p.num_heads; ++h) {
        const int64_t list = kernels::LayoutHead(lists, h) * nb + i;
        const int32_t* begin = lists.row_blocks + lists.row_begin[list];
        const int32_t* end = lists.row_blocks + lists.row_begin[list + 1];
        if (!std::binary_search(begin, end, static_cast<int32_t>(j))) continue;
        float* tile = result.values.data() + e * pair_values +
                      (b * p.num_heads + h) * bs * bs;
        for (int64_t r = 0; r < bs; ++r) {
          const int64_t query = i * bs + r;
          const float row_lse =
              p.lse[b * p.lse_stride_b + h * p.lse_stride_h + query];
          if (!std::isfinite(row_lse)) continue;
          kernels::cpu::LoadRow(
              kernels::cpu::RowAddress(p.q, p.dtype, b, query, h), p.dtype,
              p.head_dim, q_row.data());
          for (int64_t c = 0; c < bs; ++c) {
            const int64_t key = j * bs + c;
            if (p.is_causal && key > query) continue;
            if (mask != nullptr && mask[b * p.sequence.mask_stride_b + key]) {
              continue;
            }
            kernels::cpu::LoadRow(
                kernels::cpu::RowAddress(p.k, p.dtype, b, key, h), p.dtype,
                p.head_dim, k_row.data());
            double dot = 0.0;
            for (int64_t a = 0; a < p.head_dim; ++a) dot += q_row[a] * k_row[a];
            tile[r * bs + c] =
                static_cast<float>(std::exp(p.softmax_scale * dot - row_lse));
          }
        }
      }
    }
  }
  return result;
}

DA_REGISTER_ATTENTION("block_sparse", CreateBlockSparse);

}  // namespace dilated
