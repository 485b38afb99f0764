#include "tools/run_model.h"

#include <algorithm>
#include <map>
#include <memory>
#include <set>
#include <tuple>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "factory/status_macros.h"
#include "io/safetensors.h"
#include "models/long_net.h"
#include "models/module.h"
#include "models/registry.h"
#include "models/safetensors_io.h"

namespace dilated {
namespace tools {
namespace {

using models::ParameterSource;
using models::Tensor;

constexpr const char* kModels[] = {"multihead", "multihead_improved",
                                   "encoder_layer", "decoder_layer", "longnet"};

bool Has(const ParameterSource& weights, const std::string& name) {
  return weights.Shape(name).ok();
}

// Returns a setting read off tensor `name` (its extent `axis`), or the flag's
// value when given; InvalidArgument when the flag contradicts the tensor, or
// when neither is there.
absl::StatusOr<int64_t> Setting(const ParameterSource& weights,
                                const std::optional<int64_t>& flag,
                                const std::string& name, size_t axis,
                                const char* setting) {
  absl::StatusOr<std::vector<int64_t>> shape = weights.Shape(name);
  const bool known = shape.ok() && shape->size() > axis;
  if (flag.has_value()) {
    if (known && (*shape)[axis] != *flag) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--", setting, "=", *flag, " does not match the weights: tensor '",
          name, "' has shape ", models::ShapeString(*shape)));
    }
    return *flag;
  }
  if (!known) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot infer ", setting, ": the weights have no ",
                     shape.ok() ? "suitable " : "", "tensor '", name,
                     "' (is --model right? or pass --", setting, ")"));
  }
  return (*shape)[axis];
}

// Returns the number of layers named "<prefix><i>.*": InvalidArgument unless
// the indices i are exactly 0 .. count - 1 (a count never exceeds the
// number of tensors in the file).
absl::StatusOr<int64_t> CountLayers(const ParameterSource& weights,
                                    const std::string& prefix) {
  std::set<int64_t> indices;
  for (const std::string& name : weights.Names()) {
    absl::string_view rest = name;
    if (!absl::ConsumePrefix(&rest, prefix)) continue;
    const std::pair<absl::string_view, absl::string_view> index =
        absl::StrSplit(rest, absl::MaxSplits('.', 1));
    int64_t i = 0;
    if (!absl::SimpleAtoi(index.first, &i) || i < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tensor '", name, "': '", index.first, "' is not a layer index"));
    }
    indices.insert(i);
  }
  const int64_t count = static_cast<int64_t>(indices.size());
  if (count > 0 && *indices.rbegin() != count - 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the weights' ", prefix, "<i> layers are not numbered 0 to ", count - 1,
        ": the largest index is ", *indices.rbegin()));
  }
  return count;
}

CudaForwardFn& CudaForward() {
  static CudaForwardFn forward = nullptr;
  return forward;
}

// Returns -1 for the CPU, the CUDA device index for cuda[:N];
// InvalidArgument for anything else, FailedPrecondition for CUDA in a build
// without it.
absl::StatusOr<int> ParseDevice(const std::string& device) {
  if (device == "cpu") return -1;
  int index = 0;
  if (device != "cuda" &&
      !(absl::StartsWith(device, "cuda:") &&
        absl::SimpleAtoi(device.substr(5), &index) && index >= 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--device=", device, ": expected cpu or cuda[:N]"));
  }
  if (CudaForward() == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("--device=", device,
                     ": this build has no CUDA support (build with "
                     "--config=cuda)"));
  }
  return index;
}

// Returns the number of parameters of the module `request` and `shape`
// describe (in double: flags can be large).
double ParameterCount(const ModelRequest& request, const InferredShape& shape) {
  const double e = static_cast<double>(shape.d_model);
  const double ff = static_cast<double>(shape.dim_feedforward);
  const double bias = shape.bias ? 1.0 : 0.0;
  const double norm = 2.0 * e;
  if (request.model == "multihead" || request.model == "multihead_improved") {
    const double norms =
        !shape.layer_norm ? 0.0 : (shape.upstream ? norm : 2.0 * norm);
    return 4.0 * (e * e + bias * e) + norms;
  }
  // Layers: biases on, the attention's LayerNorms per the variant.
  const double attention_norms = shape.upstream ? norm : 2.0 * norm;
  const double attention = 4.0 * (e * e + e);
  const double feed_forward = norm + (e * ff + ff) + 2.0 * ff + (ff * e + e);
  const double encoder = norm + attention + attention_norms + feed_forward;
  const double decoder =
      2.0 * norm + 2.0 * attention + attention_norms + feed_forward;
  if (request.model == "encoder_layer") return encoder;
  if (request.model == "decoder_layer") return decoder;
  return static_cast<double>(shape.num_encoder_layers) * encoder +
         static_cast<double>(shape.num_decoder_layers) * decoder;
}

// Returns the number of elements of the tensors of `weights` that are not
// inputs.
double WeightElements(const io::SafetensorsFile& weights) {
  double total = 0.0;
  for (const io::SafetensorsTensor& t : weights.tensors()) {
    if (!absl::StartsWith(t.name, "input.")) total += t.NumElements();
  }
  return total;
}

using Built = BuiltModel;

models::Module* RootModule(const Built& built) {
  if (built.multihead) return built.multihead.get();
  if (built.encoder) return built.encoder.get();
  if (built.decoder) return built.decoder.get();
  return built.longnet.get();
}

// Returns the module that `request` describes, freshly initialised.
absl::StatusOr<Built> Build(const ModelRequest& request,
                            const InferredShape& shape) {
  const models::MultiheadVariant variant =
      shape.upstream ? models::MultiheadVariant::kUpstream
                     : models::MultiheadVariant::kFork;
  Built built;
  if (request.model == "multihead" || request.model == "multihead_improved") {
    models::MultiheadConfig config;
    config.embed_dim = shape.d_model;
    config.num_heads = request.nhead;
    config.segment_lengths = request.segment_lengths;
    config.dilation_rates = request.dilation_rates;
    config.bias = shape.bias;
    config.layer_norm = shape.layer_norm;
    config.variant = variant;
    config.normalize_group_sums = request.normalize_group_sums;
    config.attention_core = request.attention_core;
    DA_ASSIGN_OR_RETURN(built.multihead,
                        models::CreateMultiheadAttention(
                            request.model == "multihead" ? "multihead_standard"
                                                         : "multihead_improved",
                            config));
    return built;
  }
  if (request.model == "longnet") {
    models::LongNetConfig config;
    config.d_model = shape.d_model;
    config.nhead = request.nhead;
    config.num_encoder_layers = shape.num_encoder_layers;
    config.num_decoder_layers = shape.num_decoder_layers;
    config.dim_feedforward = shape.dim_feedforward;
    config.segment_lengths = request.segment_lengths;
    config.dilation_rates = request.dilation_rates;
    config.activation = request.activation;
    config.variant = variant;
    config.normalize_group_sums = request.normalize_group_sums;
    config.attention_core = request.attention_core;
    DA_ASSIGN_OR_RETURN(built.longnet, models::LongNet::Create(config));
    return built;
  }
  models::TransformerLayerConfig config;
  config.d_model = shape.d_model;
  config.nhead = request.nhead;
  config.segment_lengths = request.segment_lengths;
  config.dilation_rates = request.dilation_rates;
  config.dim_feedforward = shape.dim_feedforward;
  config.activation = request.activation;
  config.variant = variant;
  config.normalize_group_sums = request.normalize_group_sums;
  config.attention_core = request.attention_core;
  if (request.model == "encoder_layer") {
    DA_ASSIGN_OR_RETURN(built.encoder,
                        models::DilatedTransformerEncoderLayer::Create(config));
  } else {
    DA_ASSIGN_OR_RETURN(built.decoder,
                        models::DilatedTransformerDecoderLayer::Create(config));
  }
  return built;
}

absl::StatusOr<Tensor> Forward(const ModelRequest& request, const Built& built,
                               const Tensor& x, const Tensor* memory) {
  if (built.multihead) {
    if (memory == nullptr)
      return built.multihead->Forward(x, request.is_causal);
    return built.multihead->Forward(x, *memory, *memory, request.is_causal);
  }
  if (built.encoder) return built.encoder->Forward(x, request.is_causal);
  if (built.decoder) {
    return built.decoder->Forward(x, *memory, request.is_causal,
                                  request.is_causal);
  }
  return built.longnet->Forward(x, request.is_causal);
}

std::string Join(const std::vector<int64_t>& values) {
  return absl::StrJoin(values, ",");
}

}  // namespace

void RegisterCudaForward(CudaForwardFn forward) { CudaForward() = forward; }

absl::StatusOr<InferredShape> InferShape(const ModelRequest& request,
                                         const ParameterSource& weights) {
  const std::string& model = request.model;
  InferredShape shape;
  if (model == "multihead" || model == "multihead_improved") {
    const std::string projection = model == "multihead" ? "q_proj" : "qkv_proj";
    DA_ASSIGN_OR_RETURN(
        shape.d_model, Setting(weights, request.d_model, projection + ".weight",
                               1, "d_model"));
    shape.bias = Has(weights, projection + ".bias");
    shape.upstream = model == "multihead" && Has(weights, "norm.weight");
    shape.layer_norm = shape.upstream || Has(weights, "q_ln.weight");
    return shape;
  }
  if (model != "encoder_layer" && model != "decoder_layer" &&
      model != "longnet") {
    return absl::InvalidArgumentError(absl::StrCat(
        "--model=", model, ": expected one of ", absl::StrJoin(kModels, ", ")));
  }
  std::string prefix;
  if (model == "longnet") {
    prefix = "encoder.layers.0.";
    for (const auto& [flag, stack, count] :
         {std::tuple<const std::optional<int64_t>*, const char*, int64_t*>{
              &request.num_encoder_layers, "encoder",
              &shape.num_encoder_layers},
          {&request.num_decoder_layers, "decoder",
           &shape.num_decoder_layers}}) {
      DA_ASSIGN_OR_RETURN(
          *count, CountLayers(weights, absl::StrCat(stack, ".layers.")));
      if (flag->has_value() && *count > 0 && **flag != *count) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--num_", stack, "_layers=", **flag,
            " does not match the weights, which hold ", *count, " ", stack,
            " layers (", stack, ".layers.0 to ", *count - 1, ")"));
      }
      if (flag->has_value()) *count = **flag;
    }
  }
  DA_ASSIGN_OR_RETURN(
      shape.d_model,
      Setting(weights, request.d_model, prefix + "norm1.weight", 0, "d_model"));
  DA_ASSIGN_OR_RETURN(shape.dim_feedforward,
                      Setting(weights, request.dim_feedforward,
                              prefix + "linear1.weight", 0, "dim_feedforward"));
  const char* attention =
      model == "decoder_layer" ? "multihead_attn" : "self_attn";
  shape.upstream = Has(weights, prefix + attention + ".norm.weight");
  return shape;
}

absl::Status RunModelOnFiles(const ModelRequest& request) {
  if (std::find(std::begin(kModels), std::end(kModels), request.model) ==
      std::end(kModels)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--model=", request.model, ": expected one of ",
                     absl::StrJoin(kModels, ", ")));
  }
  if (request.nhead <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--nhead must be positive, got ", request.nhead));
  }
  for (const auto& [flag, path] :
       {std::pair<const char*, const std::string*>{"weights", &request.weights},
        {"input", &request.input},
        {"output", &request.output}}) {
    if (path->empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", flag, " is required"));
    }
  }
  DA_ASSIGN_OR_RETURN(const int device, ParseDevice(request.device));

  DA_ASSIGN_OR_RETURN(io::SafetensorsFile weights_file,
                      io::ReadSafetensors(request.weights));
  const models::SafetensorsParameterSource weights(&weights_file);
  DA_ASSIGN_OR_RETURN(const InferredShape shape, InferShape(request, weights));
  // A strict load needs every parameter in the file, so a model larger than
  // the file cannot load. Past 2^26 parameters (256 MiB) it is refused here,
  // before it is allocated; smaller ones are built so that the loader names
  // the tensors at fault.
  constexpr double kAllocateAnyway = 67108864.0;
  const double parameters = ParameterCount(request, shape);
  const double available = WeightElements(weights_file);
  if (parameters > available && parameters > kAllocateAnyway) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the settings (d_model ", shape.d_model, ", dim_feedforward ",
        shape.dim_feedforward, ", layers ", shape.num_encoder_layers, " + ",
        shape.num_decoder_layers, ") describe a --model=", request.model,
        " of ", parameters, " parameters, but '", request.weights, "' holds ",
        available, " elements"));
  }
  DA_ASSIGN_OR_RETURN(Built built, Build(request, shape));
  models::LoadOptions options;
  options.ignored_prefixes = {"input."};
  const absl::Status loaded =
      models::LoadStateDict(weights, RootModule(built), options);
  if (!loaded.ok()) {
    return absl::Status(loaded.code(), absl::StrCat("'", request.weights,
                                                    "': ", loaded.message()));
  }

  std::optional<io::SafetensorsFile> separate_input;
  if (request.input != request.weights) {
    DA_ASSIGN_OR_RETURN(separate_input, io::ReadSafetensors(request.input));
  }
  const io::SafetensorsFile& input =
      separate_input ? *separate_input : weights_file;
  DA_ASSIGN_OR_RETURN(const Tensor x, models::ReadTensor(input, "input.x"));
  std::optional<Tensor> memory;
  if (request.model == "decoder_layer" ||
      (request.model != "longnet" && request.model != "encoder_layer" &&
       input.Find("input.memory").ok())) {
    DA_ASSIGN_OR_RETURN(memory, models::ReadTensor(input, "input.memory"));
  }
  const Tensor* memory_or_null = memory ? &*memory : nullptr;
  DA_ASSIGN_OR_RETURN(
      const Tensor y,
      device < 0
          ? Forward(request, built, x, memory_or_null)
          : CudaForward()(device, built, x, memory_or_null, request.is_causal));
  const std::map<std::string, std::string> metadata = {
      {"model", request.model},
      {"nhead", absl::StrCat(request.nhead)},
      {"segment_lengths", Join(request.segment_lengths)},
      {"dilation_rates", Join(request.dilation_rates)},
      {"is_causal", request.is_causal ? "true" : "false"},
      {"weights", request.weights},
      {"input", request.input},
  };
  return models::WriteTensors(request.output, {{"y", &y}}, metadata);
}

}  // namespace tools
}  // namespace dilated
