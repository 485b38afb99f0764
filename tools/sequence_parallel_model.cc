// sequence_parallel_model: prints the byte model of "distributed" and
// "ring" (tools/sequence_parallel_traffic.h) without running attention.
//
// With no --config, the tables of docs/DISTRIBUTED_SCALING.md: configs A and
// L at n = 2^20 on P = 2, 4, 8, 128 ranks, and the 1B-token settings G2 and
// G4 at n = 2^30 on 128 ranks with transfer and compute times:
//
//   bazel-bin/tools/sequence_parallel_model
//
// With --config, every rank's bytes of one problem, to compare with the
// counters of benchmarks/sequence_parallel_benchmark.cc at the same size:
//
//   bazel-bin/tools/sequence_parallel_model --config=L --n=16384 --ranks=4
//       --dtype_bytes=4
//
// The configurations A, L, G2 and G4 are SpPreset's.

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "distributed/call_agreement.h"
#include "tools/sequence_parallel_traffic.h"

ABSL_FLAG(std::string, config, "",
          "A, L, G2 or G4: print every rank's bytes of that problem (empty: "
          "the standard tables)");
ABSL_FLAG(int64_t, n, 16384, "whole sequence length (with --config)");
ABSL_FLAG(int, ranks, 2, "ranks P; n must be a multiple (with --config)");
ABSL_FLAG(int64_t, dtype_bytes, 2,
          "bytes of one K/V element, and of the dK/dV the all-gather sends");

namespace dilated {
namespace tools {
namespace {

constexpr double kMiB = 1024.0 * 1024.0;
// Per-GPU bandwidth one way: NVLink 4 (H100/H200: 900 GB/s both ways) and
// InfiniBand NDR (400 Gb/s); dense float16 attention throughput assumed.
constexpr double kNvlinkBytesPerSecond = 450e9;
constexpr double kInfinibandBytesPerSecond = 50e9;
constexpr double kFlopsPerSecond = 400e12;
// Backward useful FLOPs over forward (FlashAttention convention,
// docs/BASELINES.md: forward + backward = 3.5 x forward).
constexpr double kBackwardFlopRatio = 2.5;

const char* AlgorithmName(SpAlgorithm a) {
  return a == SpAlgorithm::kRing ? "ring" : "distributed";
}

// Every rank's bytes, agreement excluded, one line per rank.
void PrintPerRank(const SpProblem& base) {
  std::printf(
      "# n=%lld P=%d K/V element bytes=%lld; agreement per call and rank: "
      "%zu bytes each way (add once per call to compare with counters)\n",
      static_cast<long long>(base.seq_len), base.ranks,
      static_cast<long long>(base.kv_bytes),
      distributed::AgreementBytes() * (base.ranks - 1));
  std::printf(
      "algorithm\tcausal\trank\tfwd_sent\tfwd_recv\tbwd_sent\t"
      "bwd_recv\n");
  for (SpAlgorithm a : {SpAlgorithm::kAllGather, SpAlgorithm::kRing}) {
    for (bool causal : {false, true}) {
      SpProblem p = base;
      p.is_causal = causal;
      for (int r = 0; r < p.ranks; ++r) {
        const RankTraffic t = ModelTraffic(p, a, r);
        std::printf("%s\t%d\t%d\t%llu\t%llu\t%llu\t%llu\n", AlgorithmName(a),
                    causal ? 1 : 0, r,
                    static_cast<unsigned long long>(t.forward_sent),
                    static_cast<unsigned long long>(t.forward_received),
                    static_cast<unsigned long long>(t.backward_sent),
                    static_cast<unsigned long long>(t.backward_received));
      }
    }
  }
}

// The largest and the mean over ranks of a problem's traffic and work.
struct Summary {
  double forward_max = 0, forward_mean = 0;
  double backward_max = 0, backward_mean = 0;
  double flops_max = 0;
  double forward_buffer_max = 0, backward_buffer_max = 0;
};

Summary Summarize(const SpProblem& p, SpAlgorithm a) {
  Summary s;
  for (int r = 0; r < p.ranks; ++r) {
    const RankTraffic t = ModelTraffic(p, a, r);
    const RankWork w = ModelWork(p, a, r);
    s.forward_max =
        std::max(s.forward_max, static_cast<double>(t.forward_sent));
    s.backward_max =
        std::max(s.backward_max, static_cast<double>(t.backward_sent));
    s.forward_mean += static_cast<double>(t.forward_sent) / p.ranks;
    s.backward_mean += static_cast<double>(t.backward_sent) / p.ranks;
    s.flops_max = std::max(s.flops_max, w.forward_flops);
    s.forward_buffer_max = std::max(
        s.forward_buffer_max, static_cast<double>(w.forward_buffer_bytes));
    s.backward_buffer_max = std::max(
        s.backward_buffer_max, static_cast<double>(w.backward_buffer_bytes));
  }
  return s;
}

void PrintTable(const std::vector<std::string>& configs, int64_t n,
                const std::vector<int>& ranks, int64_t dtype_bytes) {
  std::printf(
      "\n## Bytes sent per rank and call, n = %lld, K/V %lld-byte elements "
      "(MiB; max and mean over ranks; agreement excluded)\n\n",
      static_cast<long long>(n), static_cast<long long>(dtype_bytes));
  std::printf(
      "| config | P | mask | algorithm | fwd max | fwd mean | bwd max | "
      "bwd mean | fwd buffers | bwd buffers |\n"
      "|---|---|---|---|---|---|---|---|---|---|\n");
  for (const std::string& config : configs) {
    for (int P : ranks) {
      for (bool causal : {false, true}) {
        for (SpAlgorithm a : {SpAlgorithm::kAllGather, SpAlgorithm::kRing}) {
          SpProblem p;
          SpPreset(config, n, &p);
          p.ranks = P;
          p.is_causal = causal;
          p.kv_bytes = p.grad_bytes = dtype_bytes;
          const Summary s = Summarize(p, a);
          std::printf(
              "| %s | %d | %s | %s | %.3f | %.3f | %.3f | %.3f | %.3f | "
              "%.3f |\n",
              config.c_str(), P, causal ? "causal" : "full", AlgorithmName(a),
              s.forward_max / kMiB, s.forward_mean / kMiB,
              s.backward_max / kMiB, s.backward_mean / kMiB,
              s.forward_buffer_max / kMiB, s.backward_buffer_max / kMiB);
        }
      }
    }
  }
}

// Bytes and times per layer on the busiest rank of the 1B-token settings.
void PrintLargeScale(int64_t n, int P, int64_t dtype_bytes) {
  std::printf(
      "\n## n = %lld on P = %d ranks (l = %lld), K/V %lld-byte elements, "
      "per layer on the busiest rank\n\n",
      static_cast<long long>(n), P, static_cast<long long>(n / P),
      static_cast<long long>(dtype_bytes));
  std::printf(
      "| config | mask | algorithm | fwd MiB | bwd MiB | fwd NVLink us | "
      "fwd IB us | bwd NVLink us | bwd IB us | fwd compute ms | "
      "bwd compute ms | fwd buffers MiB | bwd buffers MiB |\n"
      "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (const char* config : {"G2", "G4"}) {
    for (bool causal : {false, true}) {
      for (SpAlgorithm a : {SpAlgorithm::kAllGather, SpAlgorithm::kRing}) {
        SpProblem p;
        SpPreset(config, n, &p);
        p.ranks = P;
        p.is_causal = causal;
        p.kv_bytes = p.grad_bytes = dtype_bytes;
        const Summary s = Summarize(p, a);
        const double forward_ms = s.flops_max / kFlopsPerSecond * 1e3;
        std::printf(
            "| %s | %s | %s | %.3f | %.3f | %.1f | %.1f | %.1f | %.1f | "
            "%.1f | %.1f | %.3f | %.3f |\n",
            config, causal ? "causal" : "full", AlgorithmName(a),
            s.forward_max / kMiB, s.backward_max / kMiB,
            s.forward_max / kNvlinkBytesPerSecond * 1e6,
            s.forward_max / kInfinibandBytesPerSecond * 1e6,
            s.backward_max / kNvlinkBytesPerSecond * 1e6,
            s.backward_max / kInfinibandBytesPerSecond * 1e6, forward_ms,
            forward_ms * kBackwardFlopRatio, s.forward_buffer_max / kMiB,
            s.backward_buffer_max / kMiB);
      }
    }
  }
  for (const char* config : {"G2", "G4"}) {
    SpProblem p;
    SpPreset(config, n, &p);
    std::printf("\n%s: h = %lld, groups (segment/rate/heads):", config,
                static_cast<long long>(p.num_heads));
    for (const kernels::GroupParams& g : ModelGroups(p)) {
      std::printf(" %lld/%lld/%lld", static_cast<long long>(g.segment_length),
                  static_cast<long long>(g.dilation_rate),
                  static_cast<long long>(g.num_heads));
    }
    std::printf("\n");
  }
}

int Main() {
  const std::string config = absl::GetFlag(FLAGS_config);
  const int64_t dtype_bytes = absl::GetFlag(FLAGS_dtype_bytes);
  if (!config.empty()) {
    SpProblem p;
    const int64_t n = absl::GetFlag(FLAGS_n);
    const int ranks = absl::GetFlag(FLAGS_ranks);
    if (!SpPreset(config, n, &p) || ranks < 1 || n % ranks != 0) {
      std::fprintf(stderr,
                   "sequence_parallel_model: --config must be A, L, G2 or "
                   "G4 and --n a multiple of --ranks\n");
      return 1;
    }
    p.ranks = ranks;
    p.kv_bytes = p.grad_bytes = dtype_bytes;
    PrintPerRank(p);
    return 0;
  }
  std::printf(
      "# Model (arithmetic, nothing measured): "
      "tools/sequence_parallel_traffic.h\n");
  PrintTable({"A", "L"}, int64_t{1} << 20, {2, 4, 8, 128}, dtype_bytes);
  PrintLargeScale(int64_t{1} << 30, 128, dtype_bytes);
  return 0;
}

}  // namespace
}  // namespace tools
}  // namespace dilated

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "prints the byte model of sequence-parallel dilated attention");
  absl::ParseCommandLine(argc, argv);
  return dilated::tools::Main();
}
