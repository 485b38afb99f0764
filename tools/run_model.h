// File: run_model.h
//
// The work of the run_model command: build a model of the reference library
// (multihead attention, encoder or decoder layer, LongNet), load its PyTorch
// state dict from a safetensors file, run it forward on "input.x" (and
// "input.memory") from another file and write "y" (docs/MODELS.md).
//
//   dilated::tools::ModelRequest request;
//   request.model = "longnet";
//   request.nhead = 12;
//   request.segment_lengths = {2048, 4096};
//   request.dilation_rates = {1, 2};
//   request.weights = request.input = "longnet.safetensors";
//   request.output = "y.safetensors";
//   absl::Status status = dilated::tools::RunModelOnFiles(request);

#ifndef TOOLS_RUN_MODEL_H_
#define TOOLS_RUN_MODEL_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "models/decoder_layer.h"
#include "models/encoder_layer.h"
#include "models/long_net.h"
#include "models/multihead_attention.h"
#include "models/ops.h"
#include "models/state_dict.h"
#include "models/tensor.h"

namespace dilated {
namespace tools {

struct ModelRequest {
  // "multihead", "multihead_improved", "encoder_layer", "decoder_layer" or
  // "longnet".
  std::string model;
  int64_t nhead = 0;
  std::vector<int64_t> segment_lengths;
  std::vector<int64_t> dilation_rates;
  bool is_causal = false;
  // "cpu" or "cuda[:N]" (CUDA device N, 0 by default; needs a build with
  // --config=cuda).
  std::string device = "cpu";
  // Inferred from the weights when unset; when set, they must agree with
  // the weights wherever the weights tell.
  std::optional<int64_t> d_model;
  std::optional<int64_t> num_encoder_layers;
  std::optional<int64_t> num_decoder_layers;
  std::optional<int64_t> dim_feedforward;
  // The feed-forward activation of the layers (not in the weights).
  models::Activation activation = models::Activation::kRelu;
  // Upstream's per-group sum normalisation (multihead with a "norm" only).
  bool normalize_group_sums = false;
  // Factory name of the attention core; empty for the default.
  std::string attention_core;
  // The state dict; tensors named "input.*" in it are ignored.
  std::string weights;
  // Holds "input.x" [batch, seq, d_model] and, for decoder_layer (and
  // optionally multihead cross-attention), "input.memory"; other tensors are
  // ignored. May be the weights file.
  std::string input;
  // Receives "y" in the dtype of input.x.
  std::string output;
};

// The settings of a model read off its state dict.
struct InferredShape {
  int64_t d_model = 0;
  int64_t dim_feedforward = 0;  // 0 for the multihead modules.
  int64_t num_encoder_layers = 0;
  int64_t num_decoder_layers = 0;
  bool bias = true;        // Multihead modules: projections have biases.
  bool layer_norm = true;  // Multihead modules: q_ln/k_ln or norm present.
  bool upstream = false;   // Attention LayerNorms named "norm" (upstream).
};

// The module a request describes, its parameters loaded: exactly one member
// is set.
struct BuiltModel {
  std::unique_ptr<models::MultiheadAttention> multihead;
  std::unique_ptr<models::DilatedTransformerEncoderLayer> encoder;
  std::unique_ptr<models::DilatedTransformerDecoderLayer> decoder;
  std::unique_ptr<models::LongNet> longnet;
};

// Runs `model` forward on CUDA device `device` (a device-resident copy in
// the dtype of x): x and memory (null unless the model takes one) are staged
// to the device and y comes back to the host.
using CudaForwardFn = absl::StatusOr<models::Tensor> (*)(
    int device, BuiltModel& model, const models::Tensor& x,
    const models::Tensor* memory, bool is_causal);

// Installs the CUDA forward; the CUDA build's run_model_cuda library calls
// it at start-up. Without one, --device=cuda is FailedPrecondition.
void RegisterCudaForward(CudaForwardFn forward);

// Returns the settings of request.model: read off the state dict `weights`,
// or those the request sets; InvalidArgument naming the tensor when a set
// value contradicts it, or when the tensor that would tell is missing.
absl::StatusOr<InferredShape> InferShape(
    const ModelRequest& request, const models::ParameterSource& weights);

// Runs `request`. Returns the first error met, naming the file, tensor, flag
// or field at fault: InvalidArgument for a bad model name, flag, shape or
// state dict (missing, unexpected or mis-shaped tensors), NotFound for a
// missing file or input tensor, DataLoss for a truncated file,
// FailedPrecondition for a device the models cannot use.
absl::Status RunModelOnFiles(const ModelRequest& request);

}  // namespace tools
}  // namespace dilated

#endif  // TOOLS_RUN_MODEL_H_
