#include "tools/run_attention.h"

#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "attention/attention.h"
#include "attention/registry.h"
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

// Returns the view of the input tensor `name`, which must be 4-D.
absl::StatusOr<TensorView> InputTensor(const io::SafetensorsFile& file,
                                       absl::string_view name) {
  DA_ASSIGN_OR_RETURN(TensorView view, file.View(name));
  if (view.rank != 4) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", file.path(), "': tensor '", name,
                     "' must have shape [batch, seq, heads, head_dim], got ",
                     view.ShapeString()));
  }
  return view;
}

std::map<std::string, std::string> OutputMetadata(const RunRequest& request) {
  std::map<std::string, std::string> metadata = {
      {"impl", request.impl},
      {"segment_lengths", absl::StrJoin(request.config.segment_lengths, ",")},
      {"dilation_rates", absl::StrJoin(request.config.dilation_rates, ",")},
      {"is_causal", request.is_causal ? "true" : "false"},
      {"input", request.input},
  };
  if (request.config.softmax_scale.has_value()) {
    metadata["softmax_scale"] = absl::StrCat(*request.config.softmax_scale);
  }
  return metadata;
}

}  // namespace

absl::Status RunAttentionOnFiles(const RunRequest& request) {
  DA_ASSIGN_OR_RETURN(std::unique_ptr<Attention> attention,
                      CreateAttention(request.impl, request.config));
  DA_ASSIGN_OR_RETURN(std::unique_ptr<TensorStaging> staging,
                      CreateTensorStaging(request.device));
  DA_ASSIGN_OR_RETURN(io::SafetensorsFile input,
                      io::ReadSafetensors(request.input));
  DA_ASSIGN_OR_RETURN(TensorView q, InputTensor(input, "q"));
  DA_ASSIGN_OR_RETURN(TensorView k, InputTensor(input, "k"));
  DA_ASSIGN_OR_RETURN(TensorView v, InputTensor(input, "v"));
  TensorView grad_out;
  if (request.backward) {
    DA_ASSIGN_OR_RETURN(grad_out, InputTensor(input, "grad_out"));
  }

  const int64_t batch = q.shape[0];
  const int64_t seq = q.shape[1];
  const int64_t heads = q.shape[2];
  const int64_t head_dim = q.shape[3];
  HostTensor out(q.dtype, {batch, seq, heads, head_dim});
  HostTensor lse(DType::kFloat32, {batch, heads, seq});

  DA_ASSIGN_OR_RETURN(TensorView q_on_device, staging->Upload(q));
  DA_ASSIGN_OR_RETURN(TensorView k_on_device, staging->Upload(k));
  DA_ASSIGN_OR_RETURN(TensorView v_on_device, staging->Upload(v));
  DA_ASSIGN_OR_RETURN(TensorView out_on_device, staging->Reserve(out.view()));
  DA_ASSIGN_OR_RETURN(TensorView lse_on_device, staging->Reserve(lse.view()));
  ForwardOptions options;
  options.is_causal = request.is_causal;
  options.stream = staging->stream();
  DA_RETURN_IF_ERROR(attention->Forward(q_on_device, k_on_device, v_on_device,
                                        out_on_device, options,
                                        &lse_on_device));
  DA_RETURN_IF_ERROR(staging->Download(out_on_device, out.view()));
  std::vector<io::NamedTensor> results = {out.Named("out")};

  if (request.backward) {
    const HostTensor grad_q(q.dtype, {batch, seq, heads, head_dim});
    const HostTensor grad_k(q.dtype, {batch, seq, heads, head_dim});
    const HostTensor grad_v(q.dtype, {batch, seq, heads, head_dim});
    DA_ASSIGN_OR_RETURN(TensorView grad_out_on_device,
                        staging->Upload(grad_out));
    DA_ASSIGN_OR_RETURN(TensorView grad_q_on_device,
                        staging->Reserve(grad_q.view()));
    DA_ASSIGN_OR_RETURN(TensorView grad_k_on_device,
                        staging->Reserve(grad_k.view()));
    DA_ASSIGN_OR_RETURN(TensorView grad_v_on_device,
                        staging->Reserve(grad_v.view()));
    DA_RETURN_IF_ERROR(attention->Backward(
        q_on_device, k_on_device, v_on_device, out_on_device, lse_on_device,
        grad_out_on_device, grad_q_on_device, grad_k_on_device,
        grad_v_on_device, options));
    DA_RETURN_IF_ERROR(staging->Download(grad_q_on_device, grad_q.view()));
    DA_RETURN_IF_ERROR(staging->Download(grad_k_on_device, grad_k.view()));
    DA_RETURN_IF_ERROR(staging->Download(grad_v_on_device, grad_v.view()));
    results.push_back(grad_q.Named("grad_q"));
    results.push_back(grad_k.Named("grad_k"));
    results.push_back(grad_v.Named("grad_v"));
    return io::WriteSafetensors(request.output, results,
                                OutputMetadata(request));
  }
  return io::WriteSafetensors(request.output, results, OutputMetadata(request));
}

}  // namespace tools
}  // namespace dilated
