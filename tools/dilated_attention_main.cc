// dilated_attention: runs one registered implementation on tensors from a
// safetensors file and writes the results to another (docs/TOOLS.md).
//
//   dilated_attention --impl=standard --segment_lengths=8,16
//       --dilation_rates=1,2 [--is_causal] [--softmax_scale=0.125]
//       [--device=cpu|cuda[:N]] --input=in.safetensors
//       --output=out.safetensors [--backward]
//       [--dropout=0.1 [--dropout_seed=N] [--dropout_offset=N]]
//
//   dilated_attention --impl=block_sparse --block_size=64
//       --pattern=local_window|dilated_sparse|global_local|hierarchical|custom
//       [--window=256] [--global_tokens=64] [--sparse_dilation_rates=1,2,4]
//       --input=in.safetensors --output=out.safetensors [--backward]
//       (custom: the layout is the input's "block_layout", [nb, nb] or
//       [heads, nb, nb], BOOL or U8)
//
//   dilated_attention --impl=longnet --segment_lengths=8,16
//       --dilation_rates=1,2 ...
//
//   mpirun -np 4 dilated_attention --impl=ring --comm=mpi ...
//       every rank reads the whole input, computes its shard of the
//       sequence, and rank 0 writes the whole output.
//
// Any error is printed as one line on stderr and the exit status is 1.

#include <cstdint>
#include <cstdio>
#include <memory>
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
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "attention/block_layout.h"
#include "attention/registry.h"
#include "distributed/communicator.h"
#include "distributed/mpi_communicator.h"
#ifdef DA_TOOL_HAS_NCCL
#include "distributed/nccl_communicator.h"
#endif
#include "factory/status_macros.h"
#include "tools/run_attention.h"

ABSL_FLAG(std::string, impl, "",
          "registered implementation to run (standard, auto, ...)");
ABSL_FLAG(std::string, segment_lengths, "",
          "comma-separated segment length of every group, e.g. 8,16");
ABSL_FLAG(std::string, dilation_rates, "",
          "comma-separated dilation rate of every group, e.g. 1,2");
ABSL_FLAG(bool, is_causal, false,
          "each position attends only to selected positions at or before it");
ABSL_FLAG(std::string, softmax_scale, "",
          "multiplies q.k before the softmax (default 1/sqrt(head_dim))");
ABSL_FLAG(std::string, device, "cpu", "cpu, cuda or cuda:N");
ABSL_FLAG(double, dropout, 0.0,
          "attention dropout probability in [0, 1); > 0 runs in training "
          "mode, dropping probabilities by the Philox mask of "
          "--dropout_seed and --dropout_offset (standard, improved, auto)");
ABSL_FLAG(uint64_t, dropout_seed, 0,
          "with --dropout: the seed of the dropout mask");
ABSL_FLAG(uint64_t, dropout_offset, 0,
          "with --dropout: the offset of the dropout mask's random stream");
ABSL_FLAG(std::string, input, "",
          "safetensors file with q, k, v [batch, seq, heads, head_dim] "
          "(and grad_out with --backward), optionally key_padding_mask "
          "[batch, seq] (BOOL or U8) or cu_seqlens [batch + 1] (I32 or I64; "
          "then q, k, v are [total, heads, head_dim])");
ABSL_FLAG(std::string, output, "",
          "safetensors file to write out (and grad_q, grad_k, grad_v)");
ABSL_FLAG(bool, backward, false,
          "also run the backward pass with grad_out from --input");
ABSL_FLAG(std::string, placement, "contiguous",
          "with --comm: contiguous or zigzag, the positions each rank holds "
          "(docs/DISTRIBUTED.md)");
ABSL_FLAG(int64_t, block_size, 128,
          "block_sparse: tokens per block (the sequence length must be a "
          "multiple)");
ABSL_FLAG(std::string, pattern, "dilated_sparse",
          "block_sparse: local_window, dilated_sparse, global_local, "
          "hierarchical or custom (the input's block_layout)");
ABSL_FLAG(int64_t, window, 512,
          "block_sparse: local window in tokens (local_window, global_local)");
ABSL_FLAG(int64_t, global_tokens, 64,
          "block_sparse: global tokens of global_local, rounded up to blocks");
ABSL_FLAG(std::string, sparse_dilation_rates, "1,2,4",
          "block_sparse: block distances of dilated_sparse (first three used)");
ABSL_FLAG(std::string, comm, "none",
          "none, mpi or nccl (under mpirun; nccl needs --device=cuda and "
          "one GPU per rank): the ranks a sequence-parallel implementation "
          "(ring, distributed) spreads the sequence over");

namespace dilated {
namespace tools {
namespace {

// Returns the integers of a comma-separated `text` given to --`flag`.
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

absl::StatusOr<Device> ParseDevice(absl::string_view text) {
  if (text == "cpu") return Device::Cpu();
  if (text == "cuda") return Device::Cuda(0);
  int index = 0;
  if (absl::ConsumePrefix(&text, "cuda:") && absl::SimpleAtoi(text, &index) &&
      index >= 0) {
    return Device::Cuda(index);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--device must be cpu, cuda or cuda:N, got '",
                   absl::GetFlag(FLAGS_device), "'"));
}

absl::StatusOr<std::string> RequiredPath(absl::string_view flag,
                                         const std::string& value) {
  if (value.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("--", flag, " is required"));
  }
  return value;
}

// The block size and pattern of --impl=block_sparse; a custom layout is
// read from the input file later (RunAttentionOnFiles).
absl::StatusOr<BlockSparseConfig> BlockSparseFromFlags() {
  BlockSparseConfig config;
  config.block_size = absl::GetFlag(FLAGS_block_size);
  absl::StatusOr<BlockPattern> pattern =
      ParseBlockPattern(absl::GetFlag(FLAGS_pattern));
  if (!pattern.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--pattern: ", pattern.status().message()));
  }
  config.pattern = *pattern;
  config.window = absl::GetFlag(FLAGS_window);
  config.global_tokens = absl::GetFlag(FLAGS_global_tokens);
  DA_ASSIGN_OR_RETURN(config.sparse_dilation_rates,
                      ParseIntList("sparse_dilation_rates",
                                   absl::GetFlag(FLAGS_sparse_dilation_rates)));
  if (config.pattern == BlockPattern::kCustom) return config;
  if (absl::Status s = config.Validate(); !s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--impl=block_sparse: ", s.message()));
  }
  return config;
}

absl::StatusOr<RunRequest> RequestFromFlags() {
  RunRequest request;
  request.impl = absl::GetFlag(FLAGS_impl);
  if (request.impl.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--impl is required; registered: ",
                     absl::StrJoin(RegisteredAttentionNames(), ", ")));
  }
  if (request.impl == "block_sparse") {
    DA_ASSIGN_OR_RETURN(request.config.block_sparse, BlockSparseFromFlags());
  } else {
    DA_ASSIGN_OR_RETURN(
        request.config.segment_lengths,
        ParseIntList("segment_lengths", absl::GetFlag(FLAGS_segment_lengths)));
    DA_ASSIGN_OR_RETURN(
        request.config.dilation_rates,
        ParseIntList("dilation_rates", absl::GetFlag(FLAGS_dilation_rates)));
  }
  const std::string scale = absl::GetFlag(FLAGS_softmax_scale);
  if (!scale.empty()) {
    double value = 0.0;
    if (!absl::SimpleAtod(scale, &value)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--softmax_scale=", scale, " is not a number"));
    }
    request.config.softmax_scale = value;
  }
  request.is_causal = absl::GetFlag(FLAGS_is_causal);
  request.config.dropout = absl::GetFlag(FLAGS_dropout);
  request.dropout_seed = absl::GetFlag(FLAGS_dropout_seed);
  request.dropout_offset = absl::GetFlag(FLAGS_dropout_offset);
  DA_ASSIGN_OR_RETURN(request.device, ParseDevice(absl::GetFlag(FLAGS_device)));
  DA_ASSIGN_OR_RETURN(request.input,
                      RequiredPath("input", absl::GetFlag(FLAGS_input)));
  DA_ASSIGN_OR_RETURN(request.output,
                      RequiredPath("output", absl::GetFlag(FLAGS_output)));
  request.backward = absl::GetFlag(FLAGS_backward);
  const std::string placement = absl::GetFlag(FLAGS_placement);
  if (placement == "zigzag") {
    request.config.shard_placement = ShardPlacement::kZigzag;
  } else if (placement != "contiguous") {
    return absl::InvalidArgumentError(absl::StrCat(
        "--placement must be contiguous or zigzag, got '", placement, "'"));
  }
  return request;
}

// The communicators of --comm: `ranks` is what the attention uses (null
// for "none"); NCCL's is bootstrapped over `mpi`, which must outlive it.
struct Communicators {
  std::unique_ptr<distributed::Communicator> mpi;
  std::unique_ptr<distributed::Communicator> nccl;

  distributed::Communicator* ranks() const {
    return nccl != nullptr ? nccl.get() : mpi.get();
  }
};

absl::StatusOr<Communicators> CommunicatorsFromFlag(absl::string_view engine,
                                                    const Device& device) {
  Communicators comms;
  if (engine == "none") return comms;
  if (engine != "mpi" && engine != "nccl") {
    return absl::InvalidArgumentError(
        absl::StrCat("--comm must be none, mpi or nccl, got '", engine, "'"));
  }
  DA_ASSIGN_OR_RETURN(comms.mpi, distributed::CreateMpiCommunicator({}));
  if (engine == "mpi") return comms;
  if (device.type != DeviceType::kCuda) {
    return absl::InvalidArgumentError(
        "--comm=nccl needs --device=cuda (NCCL moves device memory)");
  }
#ifdef DA_TOOL_HAS_NCCL
  distributed::NcclOptions options;
  options.device = device.index;
  DA_ASSIGN_OR_RETURN(comms.nccl,
                      distributed::CreateNcclCommunicator(options, *comms.mpi));
  return comms;
#else
  return absl::FailedPreconditionError(
      "--comm=nccl needs a build with --config=cuda");
#endif
}

absl::Status Run(const std::vector<char*>& positional) {
  if (positional.size() > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("unexpected argument '", positional[1],
                     "'; every setting is a --flag"));
  }
  DA_ASSIGN_OR_RETURN(RunRequest request, RequestFromFlags());
  DA_ASSIGN_OR_RETURN(
      const Communicators comms,
      CommunicatorsFromFlag(absl::GetFlag(FLAGS_comm), request.device));
  request.config.communicator = comms.ranks();
  return RunAttentionOnFiles(request);
}

}  // namespace
}  // namespace tools
}  // namespace dilated

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "runs dilated attention on q, k, v from a safetensors file.\n"
      "  dilated_attention --impl=standard --segment_lengths=8,16 "
      "--dilation_rates=1,2 --input=in.safetensors --output=out.safetensors");
  const std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  const absl::Status status = dilated::tools::Run(positional);
  if (!status.ok()) {
    std::fprintf(stderr, "dilated_attention: %s\n",
                 absl::StrReplaceAll(status.ToString(), {{"\n", " "}}).c_str());
    return 1;
  }
  return 0;
}
