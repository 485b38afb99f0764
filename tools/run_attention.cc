#include "tools/run_attention.h"

#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "attention/attention.h"
#include "attention/block_layout.h"
#include "attention/registry.h"
#include "distributed/communicator.h"
#include "distributed/shard_plan.h"
#include "factory/status_macros.h"
#include "io/safetensors.h"
#include "tools/tensor_staging.h"

namespace dilated {
namespace tools {
namespace {

// A zero-filled row-major host tensor that owns its storage.
class HostTensor {
 public:
  HostTensor(DType dtype, std::initializer_list<int64_t> shape)
      : view_(TensorView::Contiguous(nullptr, dtype, shape)) {
    storage_.assign((view_.NumElements() * DTypeSize(dtype) + 7) / 8, 0);
    view_.data = storage_.data();
  }

  HostTensor(const HostTensor&) = delete;
  HostTensor& operator=(const HostTensor&) = delete;

  const TensorView& view() const { return view_; }

  // Returns a description of this tensor for WriteSafetensors.
  io::NamedTensor Named(std::string name) const {
    return io::NamedTensor{
        std::move(name), io::ToSafetensorsDType(view_.dtype),
        std::vector<int64_t>(view_.shape.begin(),
                             view_.shape.begin() + view_.rank),
        view_.data};
  }

 private:
  std::vector<uint64_t> storage_;
  TensorView view_;
};

// Returns the view of the input tensor `name`: [total, heads, head_dim] for
// packed input, else [batch, seq, heads, head_dim].
absl::StatusOr<TensorView> InputTensor(const io::SafetensorsFile& file,
                                       absl::string_view name, bool packed) {
  DA_ASSIGN_OR_RETURN(TensorView view, file.View(name));
  const int rank = packed ? 3 : 4;
  if (view.rank != rank) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", file.path(), "': tensor '", name, "' must have shape ",
        packed ? "[total, heads, head_dim] (the file has cu_seqlens)"
               : "[batch, seq, heads, head_dim]",
        ", got ", view.ShapeString()));
  }
  return view;
}

// Returns the file's optional "cu_seqlens" (I32 or I64, [batch + 1]) as
// int32 in `storage`, or nullopt when the file has none.
absl::StatusOr<std::optional<TensorView>> CuSeqlens(
    const io::SafetensorsFile& file, std::vector<int32_t>* storage) {
  if (!file.Find("cu_seqlens").ok()) return std::nullopt;
  DA_ASSIGN_OR_RETURN(const io::SafetensorsTensor* tensor,
                      file.Find("cu_seqlens"));
  if (tensor->dtype != io::SafetensorsDType::kI32 &&
      tensor->dtype != io::SafetensorsDType::kI64) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", file.path(), "': tensor 'cu_seqlens' must be I32 or I64, got ",
        io::SafetensorsDTypeName(tensor->dtype)));
  }
  if (tensor->shape.size() != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", file.path(),
                     "': tensor 'cu_seqlens' must be 1-D [batch + 1], got "
                     "rank ",
                     tensor->shape.size()));
  }
  for (double value : tensor->ToDoubles()) {
    if (value < 0 || value > std::numeric_limits<int32_t>::max()) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", file.path(), "': tensor 'cu_seqlens' holds ", value,
                       ", outside [0, 2^31)"));
    }
    storage->push_back(static_cast<int32_t>(value));
  }
  return TensorView::Contiguous(storage->data(), DType::kInt32,
                                {static_cast<int64_t>(storage->size())});
}

// Returns the file's optional "key_padding_mask" (BOOL or U8, nonzero =
// padding) as a bool view, or nullopt when the file has none.
absl::StatusOr<std::optional<TensorView>> KeyPaddingMask(
    const io::SafetensorsFile& file) {
  if (!file.Find("key_padding_mask").ok()) return std::nullopt;
  DA_ASSIGN_OR_RETURN(const io::SafetensorsTensor* tensor,
                      file.Find("key_padding_mask"));
  if (tensor->dtype != io::SafetensorsDType::kBool &&
      tensor->dtype != io::SafetensorsDType::kU8) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", file.path(),
                     "': tensor 'key_padding_mask' must be BOOL or U8, got ",
                     io::SafetensorsDTypeName(tensor->dtype)));
  }
  TensorView view;
  view.data = const_cast<void*>(tensor->data);
  view.dtype = DType::kBool;
  view.rank = static_cast<int>(tensor->shape.size());
  if (view.rank > TensorView::kMaxRank) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", file.path(), "': tensor 'key_padding_mask' has rank ", view.rank));
  }
  int64_t stride = 1;
  for (int d = view.rank - 1; d >= 0; --d) {
    view.shape[d] = tensor->shape[d];
    view.strides[d] = stride;
    stride *= tensor->shape[d];
  }
  return view;
}

// Returns the file's "block_layout" (BOOL or U8, [nb, nb] or [heads, nb,
// nb]) as a block layout.
absl::StatusOr<BlockLayout> BlockLayoutOf(const io::SafetensorsFile& file) {
  if (!file.Find("block_layout").ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", file.path(),
        "' has no tensor 'block_layout', which --pattern=custom reads"));
  }
  DA_ASSIGN_OR_RETURN(const io::SafetensorsTensor* tensor,
                      file.Find("block_layout"));
  if (tensor->dtype != io::SafetensorsDType::kBool &&
      tensor->dtype != io::SafetensorsDType::kU8) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", file.path(), "': tensor 'block_layout' must be BOOL or U8, got ",
        io::SafetensorsDTypeName(tensor->dtype)));
  }
  const std::vector<int64_t>& shape = tensor->shape;
  const bool square =
      shape.size() >= 2 && shape[shape.size() - 1] == shape[shape.size() - 2];
  if ((shape.size() != 2 && shape.size() != 3) || !square) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", file.path(), "': tensor 'block_layout' must be [nb, nb] or ",
        "[heads, nb, nb], got ", tensor->ShapeString()));
  }
  BlockLayout layout;
  layout.heads = shape.size() == 3 ? shape[0] : 1;
  layout.num_blocks = shape.back();
  const uint8_t* bytes = static_cast<const uint8_t*>(tensor->data);
  layout.active.assign(bytes, bytes + tensor->NumElements());
  return layout;
}

// This rank's part of a sequence-parallel run: its pieces of every input's
// sequence axis (distributed/shard_plan.h: one piece for contiguous
// placement, two for zigzag); the whole sequence with one rank.
struct Shard {
  distributed::Communicator* comm = nullptr;
  ShardPlacement placement = ShardPlacement::kContiguous;
  int64_t rows = 0;
  int64_t seq_len = 0;

  bool split() const { return comm != nullptr && comm->size() > 1; }

  std::vector<distributed::ShardPiece> PiecesOf(int rank) const {
    return distributed::ShardPieces(placement, rows, rank, comm->size());
  }
};

absl::StatusOr<Shard> ShardOf(const RunRequest& request, const TensorView& q) {
  Shard shard;
  shard.comm = request.config.communicator;
  shard.placement = request.config.shard_placement;
  shard.seq_len = q.shape[1];
  shard.rows = q.shape[1];
  if (!shard.split()) return shard;
  const int size = shard.comm->size();
  const int64_t multiple =
      shard.placement == ShardPlacement::kZigzag ? 2 * size : size;
  if (shard.seq_len % multiple != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", request.input, "': the sequence length ",
                     shard.seq_len, " of 'q' must be a multiple of ", multiple,
                     shard.placement == ShardPlacement::kZigzag
                         ? " (twice the number of ranks, for zigzag placement)"
                         : " (the number of ranks)"));
  }
  shard.rows = shard.seq_len / size;
  return shard;
}

// Copies the rows of `rank`'s pieces between a whole [batch, seq, heads,
// head_dim] tensor and a contiguous [batch, rows, heads, head_dim] shard
// (to the shard when `to_shard`, else back).
void CopyPieces(const Shard& shard, int rank, const TensorView& whole,
                char* part, bool to_shard) {
  const size_t row_bytes =
      whole.shape[2] * whole.shape[3] * DTypeSize(whole.dtype);
  char* base = static_cast<char*>(whole.data);
  for (int64_t b = 0; b < whole.shape[0]; ++b) {
    for (const distributed::ShardPiece& piece : shard.PiecesOf(rank)) {
      char* in_whole = base + (b * shard.seq_len + piece.begin) * row_bytes;
      char* in_part = part + (b * shard.rows + piece.row) * row_bytes;
      const size_t bytes = (piece.end - piece.begin) * row_bytes;
      if (to_shard) {
        std::memcpy(in_part, in_whole, bytes);
      } else {
        std::memcpy(in_whole, in_part, bytes);
      }
    }
  }
}

// Gathers every rank's contiguous [batch, rows, heads, head_dim] `part` into
// `whole` ([batch, seq, heads, head_dim], rank 0 only).
absl::Status GatherRows(const Shard& shard, const TensorView& part,
                        const TensorView& whole) {
  const size_t bytes = part.NumElements() * DTypeSize(part.dtype);
  std::vector<char> all(bytes * shard.comm->size());
  DA_RETURN_IF_ERROR(
      shard.comm->AllGather(part.data, all.data(), bytes,
                            distributed::Buffers{Device::Cpu(), nullptr}));
  if (shard.comm->rank() != 0) return absl::OkStatus();
  for (int r = 0; r < shard.comm->size(); ++r) {
    CopyPieces(shard, r, whole, all.data() + r * bytes, /*to_shard=*/false);
  }
  return absl::OkStatus();
}

std::map<std::string, std::string> OutputMetadata(const RunRequest& request) {
  std::map<std::string, std::string> metadata = {
      {"impl", request.impl},
      {"segment_lengths", absl::StrJoin(request.config.segment_lengths, ",")},
      {"dilation_rates", absl::StrJoin(request.config.dilation_rates, ",")},
      {"is_causal", request.is_causal ? "true" : "false"},
      {"input", request.input},
  };
  if (request.impl == "block_sparse") {
    const BlockSparseConfig& sparse = request.config.block_sparse;
    metadata.erase("segment_lengths");
    metadata.erase("dilation_rates");
    metadata["block_size"] = absl::StrCat(sparse.block_size);
    metadata["pattern"] = BlockPatternName(sparse.pattern);
    metadata["window"] = absl::StrCat(sparse.window);
    metadata["global_tokens"] = absl::StrCat(sparse.global_tokens);
    metadata["sparse_dilation_rates"] =
        absl::StrJoin(sparse.sparse_dilation_rates, ",");
  }
  if (request.config.dropout > 0.0) {
    metadata["dropout"] = absl::StrCat(request.config.dropout);
    metadata["dropout_seed"] = absl::StrCat(request.dropout_seed);
    metadata["dropout_offset"] = absl::StrCat(request.dropout_offset);
  }
  if (request.config.softmax_scale.has_value()) {
    metadata["softmax_scale"] = absl::StrCat(*request.config.softmax_scale);
  }
  if (request.config.communicator != nullptr) {
    metadata["ranks"] = absl::StrCat(request.config.communicator->size());
    metadata["communicator"] = request.config.communicator->engine();
    metadata["shard_placement"] =
        request.config.shard_placement == ShardPlacement::kZigzag
            ? "zigzag"
            : "contiguous";
  }
  return metadata;
}

}  // namespace

absl::Status RunAttentionOnFiles(const RunRequest& request) {
  DA_ASSIGN_OR_RETURN(io::SafetensorsFile input,
                      io::ReadSafetensors(request.input));
  AttentionConfig config = request.config;
  if (request.impl == "block_sparse" &&
      config.block_sparse.pattern == BlockPattern::kCustom) {
    DA_ASSIGN_OR_RETURN(config.block_sparse.custom_layout,
                        BlockLayoutOf(input));
  }
  DA_ASSIGN_OR_RETURN(std::unique_ptr<Attention> attention,
                      CreateAttention(request.impl, config));
  DA_ASSIGN_OR_RETURN(std::unique_ptr<TensorStaging> staging,
                      CreateTensorStaging(request.device));
  std::vector<int32_t> offsets;
  DA_ASSIGN_OR_RETURN(std::optional<TensorView> cu_seqlens,
                      CuSeqlens(input, &offsets));
  DA_ASSIGN_OR_RETURN(std::optional<TensorView> mask, KeyPaddingMask(input));
  const bool packed = cu_seqlens.has_value();
  DA_ASSIGN_OR_RETURN(TensorView q, InputTensor(input, "q", packed));
  DA_ASSIGN_OR_RETURN(TensorView k, InputTensor(input, "k", packed));
  DA_ASSIGN_OR_RETURN(TensorView v, InputTensor(input, "v", packed));
  TensorView grad_out;
  if (request.backward) {
    DA_ASSIGN_OR_RETURN(grad_out, InputTensor(input, "grad_out", packed));
  }
  DA_ASSIGN_OR_RETURN(const Shard shard, ShardOf(request, q));
  // This rank's shard of each input (copies of its pieces).
  std::vector<std::unique_ptr<HostTensor>> shards;
  if (shard.split()) {
    if (packed || mask.has_value()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "'", request.input,
          "': a run over several ranks takes fixed-length input without "
          "cu_seqlens or key_padding_mask"));
    }
    for (TensorView* input : {&q, &k, &v, &grad_out}) {
      if (input->data == nullptr) continue;  // grad_out without --backward.
      shards.push_back(std::make_unique<HostTensor>(
          input->dtype,
          std::initializer_list<int64_t>{input->shape[0], shard.rows,
                                         input->shape[2], input->shape[3]}));
      CopyPieces(shard, shard.comm->rank(), *input,
                 static_cast<char*>(shards.back()->view().data),
                 /*to_shard=*/true);
      *input = shards.back()->view();
    }
  }

  // Results have q's shape; lse is [batch, heads, seq] or, packed,
  // [heads, total].
  const auto like_q = [&](DType dtype) {
    return packed ? std::make_unique<HostTensor>(
                        dtype,
                        std::initializer_list<int64_t>{q.shape[0], q.shape[1],
                                                       q.shape[2]})
                  : std::make_unique<HostTensor>(
                        dtype,
                        std::initializer_list<int64_t>{q.shape[0], q.shape[1],
                                                       q.shape[2], q.shape[3]});
  };
  const std::unique_ptr<HostTensor> out = like_q(q.dtype);
  const std::unique_ptr<HostTensor> lse =
      packed ? std::make_unique<HostTensor>(
                   DType::kFloat32,
                   std::initializer_list<int64_t>{q.shape[1], q.shape[0]})
             : std::make_unique<HostTensor>(
                   DType::kFloat32, std::initializer_list<int64_t>{
                                        q.shape[0], q.shape[2], q.shape[1]});

  ForwardOptions options;
  options.is_causal = request.is_causal;
  options.training = request.config.dropout > 0.0;
  options.dropout_seed = request.dropout_seed;
  options.dropout_offset = request.dropout_offset;
  options.stream = staging->stream();
  // cu_seqlens may stay on the host for any device; the mask moves with the
  // tensors.
  options.cu_seqlens = cu_seqlens;
  if (mask.has_value()) {
    DA_ASSIGN_OR_RETURN(options.key_padding_mask, staging->Upload(*mask));
  }
  DA_ASSIGN_OR_RETURN(TensorView q_on_device, staging->Upload(q));
  DA_ASSIGN_OR_RETURN(TensorView k_on_device, staging->Upload(k));
  DA_ASSIGN_OR_RETURN(TensorView v_on_device, staging->Upload(v));
  DA_ASSIGN_OR_RETURN(TensorView out_on_device, staging->Reserve(out->view()));
  DA_ASSIGN_OR_RETURN(TensorView lse_on_device, staging->Reserve(lse->view()));
  DA_RETURN_IF_ERROR(attention->Forward(q_on_device, k_on_device, v_on_device,
                                        out_on_device, options,
                                        &lse_on_device));
  DA_RETURN_IF_ERROR(staging->Download(out_on_device, out->view()));
  // The whole sequence's tensors (rank 0 of a sequence-parallel run gathers
  // them; otherwise the results themselves).
  std::vector<std::unique_ptr<HostTensor>> gathered;
  std::vector<io::NamedTensor> results;
  const auto add_result = [&](const HostTensor& part,
                              const char* name) -> absl::Status {
    if (!shard.split()) {
      results.push_back(part.Named(name));
      return absl::OkStatus();
    }
    const TensorView& view = part.view();
    gathered.push_back(std::make_unique<HostTensor>(
        view.dtype,
        std::initializer_list<int64_t>{view.shape[0], shard.seq_len,
                                       view.shape[2], view.shape[3]}));
    DA_RETURN_IF_ERROR(GatherRows(shard, view, gathered.back()->view()));
    results.push_back(gathered.back()->Named(name));
    return absl::OkStatus();
  };
  const auto write = [&]() -> absl::Status {
    if (shard.split() && shard.comm->rank() != 0) return absl::OkStatus();
    return io::WriteSafetensors(request.output, results,
                                OutputMetadata(request));
  };
  DA_RETURN_IF_ERROR(add_result(*out, "out"));
  if (!request.backward) return write();

  const std::unique_ptr<HostTensor> grad_q = like_q(q.dtype);
  const std::unique_ptr<HostTensor> grad_k = like_q(q.dtype);
  const std::unique_ptr<HostTensor> grad_v = like_q(q.dtype);
  DA_ASSIGN_OR_RETURN(TensorView grad_out_on_device, staging->Upload(grad_out));
  DA_ASSIGN_OR_RETURN(TensorView grad_q_on_device,
                      staging->Reserve(grad_q->view()));
  DA_ASSIGN_OR_RETURN(TensorView grad_k_on_device,
                      staging->Reserve(grad_k->view()));
  DA_ASSIGN_OR_RETURN(TensorView grad_v_on_device,
                      staging->Reserve(grad_v->view()));
  DA_RETURN_IF_ERROR(
      attention->Backward(q_on_device, k_on_device, v_on_device, out_on_device,
                          lse_on_device, grad_out_on_device, grad_q_on_device,
                          grad_k_on_device, grad_v_on_device, options));
  DA_RETURN_IF_ERROR(staging->Download(grad_q_on_device, grad_q->view()));
  DA_RETURN_IF_ERROR(staging->Download(grad_k_on_device, grad_k->view()));
  DA_RETURN_IF_ERROR(staging->Download(grad_v_on_device, grad_v->view()));
  DA_RETURN_IF_ERROR(add_result(*grad_q, "grad_q"));
  DA_RETURN_IF_ERROR(add_result(*grad_k, "grad_k"));
  DA_RETURN_IF_ERROR(add_result(*grad_v, "grad_v"));
  return write();
}

}  // namespace tools
}  // namespace dilated
