// run_model: runs a model of the reference library (multihead dilated
// attention, a dilated transformer layer or LongNet) with its PyTorch weights
// on an input from a safetensors file (docs/MODELS.md).
//
//   run_model --model=multihead|multihead_improved|encoder_layer|
//       decoder_layer|longnet --weights=W.safetensors --input=IN.safetensors
//       --output=OUT.safetensors --nhead=N --segment_lengths=2048,4096
//       --dilation_rates=1,2 [--is_causal] [--device=cpu]
//       [--d_model --num_encoder_layers --num_decoder_layers
//        --dim_feedforward: inferred from the weights when omitted]
//       [--activation=relu|gelu] [--normalize_group_sums] [--core=NAME]
//
// Any error is printed as one line on stderr and the exit status is 1.

#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "factory/status_macros.h"
#include "kernels/cpu/linear_gemm.h"
#include "models/ops.h"
#include "tools/run_model.h"

ABSL_FLAG(std::string, model, "",
          "multihead, multihead_improved, encoder_layer, decoder_layer or "
          "longnet");
ABSL_FLAG(std::string, weights, "",
          "safetensors file with the PyTorch state dict (tensors named "
          "input.* are ignored)");
ABSL_FLAG(std::string, input, "",
          "safetensors file with input.x [batch, seq, d_model] (and "
          "input.memory for decoder_layer or multihead cross-attention)");
ABSL_FLAG(std::string, output, "", "safetensors file to write y to");
ABSL_FLAG(int64_t, nhead, 0, "number of attention heads");
ABSL_FLAG(std::string, segment_lengths, "",
          "comma-separated segment length of every group, e.g. 2048,4096");
ABSL_FLAG(std::string, dilation_rates, "",
          "comma-separated dilation rate of every group, e.g. 1,2");
ABSL_FLAG(bool, is_causal, false,
          "causal attention (LongNet: encoder, decoder self- and "
          "cross-attention)");
ABSL_FLAG(std::string, device, "cpu",
          "cpu or cuda[:N] (a build with --config=cuda)");
ABSL_FLAG(int64_t, d_model, 0, "model width (0: inferred from the weights)");
ABSL_FLAG(int64_t, num_encoder_layers, 0,
          "LongNet encoder layers (0: inferred from the weights)");
ABSL_FLAG(int64_t, num_decoder_layers, 0,
          "LongNet decoder layers (0: inferred from the weights)");
ABSL_FLAG(int64_t, dim_feedforward, 0,
          "feed-forward width (0: inferred from the weights)");
ABSL_FLAG(std::string, activation, "relu",
          "feed-forward activation: relu or gelu");
ABSL_FLAG(bool, normalize_group_sums, false,
          "the upstream library's per-group sum normalisation");
ABSL_FLAG(std::string, float32_matmul_precision, "highest",
          "internal precision of the float32 linear layers on the CPU, as "
          "torch.set_float32_matmul_precision: highest (float32 products), "
          "high (each operand as two bfloat16 values) or medium (bfloat16 "
          "operands); high and medium run on AMX where the CPU has it");
ABSL_FLAG(std::string, core, "",
          "attention core's factory name (default: improved if registered, "
          "else standard)");

namespace dilated {
namespace tools {
namespace {

absl::StatusOr<std::vector<int64_t>> ParseIntList(absl::string_view flag,
                                                  absl::string_view text) {
  if (text.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, " is required (e.g. --", flag, "=8,16)"));
  }
  std::vector<int64_t> values;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    int64_t value = 0;
    if (!absl::SimpleAtoi(part, &value)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--", flag, "=", text, ": '", part, "' is not an integer"));
    }
    values.push_back(value);
  }
  return values;
}

// Returns the flag's value, or nullopt for 0 (infer); negative values are
// errors.
absl::StatusOr<std::optional<int64_t>> Optional(absl::string_view flag,
                                                int64_t value) {
  if (value < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, " must be positive, got ", value));
  }
  if (value == 0) return std::optional<int64_t>();
  return std::optional<int64_t>(value);
}

absl::StatusOr<ModelRequest> RequestFromFlags() {
  ModelRequest request;
  request.model = absl::GetFlag(FLAGS_model);
  request.weights = absl::GetFlag(FLAGS_weights);
  request.input = absl::GetFlag(FLAGS_input);
  request.output = absl::GetFlag(FLAGS_output);
  request.nhead = absl::GetFlag(FLAGS_nhead);
  DA_ASSIGN_OR_RETURN(
      request.segment_lengths,
      ParseIntList("segment_lengths", absl::GetFlag(FLAGS_segment_lengths)));
  DA_ASSIGN_OR_RETURN(
      request.dilation_rates,
      ParseIntList("dilation_rates", absl::GetFlag(FLAGS_dilation_rates)));
  request.is_causal = absl::GetFlag(FLAGS_is_causal);
  request.device = absl::GetFlag(FLAGS_device);
  DA_ASSIGN_OR_RETURN(request.d_model,
                      Optional("d_model", absl::GetFlag(FLAGS_d_model)));
  DA_ASSIGN_OR_RETURN(
      request.num_encoder_layers,
      Optional("num_encoder_layers", absl::GetFlag(FLAGS_num_encoder_layers)));
  DA_ASSIGN_OR_RETURN(
      request.num_decoder_layers,
      Optional("num_decoder_layers", absl::GetFlag(FLAGS_num_decoder_layers)));
  DA_ASSIGN_OR_RETURN(
      request.dim_feedforward,
      Optional("dim_feedforward", absl::GetFlag(FLAGS_dim_feedforward)));
  DA_ASSIGN_OR_RETURN(request.activation,
                      models::ParseActivation(absl::GetFlag(FLAGS_activation)));
  request.normalize_group_sums = absl::GetFlag(FLAGS_normalize_group_sums);
  request.attention_core = absl::GetFlag(FLAGS_core);
  return request;
}

// Sets the process's float32 matmul precision from its flag.
absl::Status ApplyMatmulPrecision(const ModelRequest& request) {
  const std::string name = absl::GetFlag(FLAGS_float32_matmul_precision);
  kernels::cpu::MatmulPrecision precision;
  if (!kernels::cpu::ParseMatmulPrecision(name.c_str(), &precision)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--float32_matmul_precision must be highest, high or "
                     "medium, got \"",
                     name, "\""));
  }
  if (precision != kernels::cpu::MatmulPrecision::kHighest &&
      request.device != "cpu") {
    return absl::InvalidArgumentError(absl::StrCat(
        "--float32_matmul_precision=", name,
        " applies to --device=cpu only, got --device=", request.device));
  }
  kernels::cpu::SetFloat32MatmulPrecision(precision);
  return absl::OkStatus();
}

absl::Status Run() {
  DA_ASSIGN_OR_RETURN(const ModelRequest request, RequestFromFlags());
  DA_RETURN_IF_ERROR(ApplyMatmulPrecision(request));
  return RunModelOnFiles(request);
}

}  // namespace
}  // namespace tools
}  // namespace dilated

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "runs a model with PyTorch weights on safetensors inputs; see "
      "docs/MODELS.md");
  const std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  if (positional.size() > 1) {
    std::fprintf(stderr, "run_model: unexpected argument '%s'\n",
                 positional[1]);
    return 1;
  }
  const absl::Status status = dilated::tools::Run();
  if (!status.ok()) {
    // One line, whatever the message holds.
    const std::string line =
        absl::StrReplaceAll(status.ToString(), {{"\n", " "}, {"\r", " "}});
    std::fprintf(stderr, "run_model: %s\n", line.c_str());
    return 1;
  }
  return 0;
}
