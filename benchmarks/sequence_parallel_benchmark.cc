// bazel/mpi_run.sh 4 bazel-bin/benchmarks/sequence_parallel_benchmark
//
// "distributed" and "ring" (docs/DISTRIBUTED.md) on P MPI ranks of one
// machine, float32 on the CPU, forward and forward + backward, causal or
// not, over config A (segments 2048, 4096, 8192; rates 1, 2, 4) and config
// L (segments 2048, 8192, n; rates 1, 4, 16: the last segment spans every
// shard), b = 1, h = 8, d = 64 (tools/sequence_parallel_traffic.h,
// SpPreset); n = 16384 in all (--sp_n), l = n / P rows per rank. Beside
// them, "improved" on the whole sequence on rank 0 alone, the
// single-process reference ("improved/whole"; the other ranks wait).
//
//   ./bazelw build -c opt //benchmarks:sequence_parallel_benchmark
//   OMP_NUM_THREADS=1 bazel/mpi_run.sh 4
//       bazel-bin/benchmarks/sequence_parallel_benchmark
//       [--sp_n=16384] [--sp_iterations=2] [--benchmark_filter=...]
//
// Every rank runs the same benchmarks in the same order with a fixed
// iteration count (--sp_iterations), since each call is collective; only
// rank 0 reports. Time: per iteration, from a barrier to the slowest rank's
// end (manual time, the maximum over ranks). Counters, per call, from the
// communicator's byte counters reset before each call (nothing subtracted):
// fwd_sent_rN, fwd_recv_rN (and bwd_sent_rN, bwd_recv_rN) of rank N;
// agreement, the bytes of the agreement each call starts with
// (distributed::AgreementBytes() * (P - 1), each way, included in the
// above); model_mismatch, how many of those counters differ from the byte
// model plus the agreement (0 expected); threads, OpenMP threads per rank.

#include <omp.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "attention/registry.h"
#include "benchmark/benchmark.h"
#include "distributed/call_agreement.h"
#include "distributed/communicator.h"
#include "distributed/mpi_communicator.h"
#include "tools/sequence_parallel_traffic.h"

namespace dilated {
namespace {

using distributed::Communicator;

Communicator* g_world = nullptr;
int64_t g_seq_len = 16384;
int64_t g_iterations = 2;

struct Case {
  std::string config;          // "A" or "L" (SpPreset).
  std::string implementation;  // "distributed", "ring", or "improved".
  bool is_causal;
  bool backward;
};

// A float32 [1, rows, h, d] tensor filled with uniform values in [-1, 1].
struct Buffer {
  Buffer(int64_t rows, int64_t heads, int64_t head_dim, std::mt19937* rng)
      : values(rows * heads * head_dim) {
    std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
    for (float& v : values) v = uniform(*rng);
    view = TensorView::Contiguous(values.data(), DType::kFloat32,
                                  {1, rows, heads, head_dim});
  }
  std::vector<float> values;
  TensorView view;
};

// The per-call counters of one iteration on this rank.
enum Counter { kFwdSent, kFwdRecv, kBwdSent, kBwdRecv, kNumCounters };
const char* const kCounterNames[] = {"fwd_sent", "fwd_recv", "bwd_sent",
                                     "bwd_recv"};

// Returns the model's counters of `rank`, agreement included.
std::vector<uint64_t> ModelCounters(const tools::SpProblem& problem,
                                    const std::string& implementation,
                                    int rank) {
  const tools::RankTraffic t = tools::ModelTraffic(
      problem,
      implementation == "ring" ? tools::SpAlgorithm::kRing
                               : tools::SpAlgorithm::kAllGather,
      rank);
  const uint64_t agreement =
      distributed::AgreementBytes() * (problem.ranks - 1);
  return {t.forward_sent + agreement, t.forward_received + agreement,
          t.backward_sent + agreement, t.backward_received + agreement};
}

void RunCase(benchmark::State& state, const Case& c) {
  Communicator& world = *g_world;
  const int ranks = world.size();
  const bool whole = c.implementation == "improved";
  tools::SpProblem problem;
  tools::SpPreset(c.config, g_seq_len, &problem);
  problem.ranks = ranks;
  problem.is_causal = c.is_causal;
  problem.kv_bytes = problem.grad_bytes = sizeof(float);

  AttentionConfig config;
  config.segment_lengths = problem.segment_lengths;
  config.dilation_rates = problem.dilation_rates;
  if (!whole) config.communicator = &world;
  absl::StatusOr<std::unique_ptr<Attention>> attention =
      CreateAttention(c.implementation, config);
  if (!attention.ok()) {
    state.SkipWithError(std::string(attention.status().message()).c_str());
    return;
  }
  // The reference runs the whole sequence on rank 0, on every core; the
  // other ranks only keep step.
  const bool computes = !whole || world.rank() == 0;
  const int64_t rows = whole ? (computes ? g_seq_len : 0) : g_seq_len / ranks;
  const int64_t h = problem.num_heads;
  const int64_t d = problem.head_dim;
  std::mt19937 rng(42 + world.rank());
  Buffer q(rows, h, d, &rng), k(rows, h, d, &rng), v(rows, h, d, &rng),
      out(rows, h, d, &rng), grad_out(rows, h, d, &rng),
      grad_q(rows, h, d, &rng), grad_k(rows, h, d, &rng),
      grad_v(rows, h, d, &rng);
  std::vector<float> lse_values(h * rows);
  const TensorView lse =
      TensorView::Contiguous(lse_values.data(), DType::kFloat32, {1, h, rows});
  ForwardOptions options;
  options.is_causal = c.is_causal;
  const int threads = omp_get_max_threads();
  if (whole && computes) omp_set_num_threads(omp_get_num_procs());

  uint64_t counters[kNumCounters] = {};
  const distributed::Buffers host{Device::Cpu(), nullptr};
  absl::Status status;
  for (auto _ : state) {
    status = world.Barrier();
    const auto start = std::chrono::steady_clock::now();
    if (status.ok() && computes) {
      world.ResetCounters();
      status = (*attention)
                   ->Forward(q.view, k.view, v.view, out.view, options, &lse);
      counters[kFwdSent] = world.bytes_sent();
      counters[kFwdRecv] = world.bytes_received();
      if (status.ok() && c.backward) {
        world.ResetCounters();
        status =
            (*attention)
                ->Backward(q.view, k.view, v.view, out.view, lse, grad_out.view,
                           grad_q.view, grad_k.view, grad_v.view, options);
        counters[kBwdSent] = world.bytes_sent();
        counters[kBwdRecv] = world.bytes_received();
      }
    }
    double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count();
    // Every rank makes this call, so the ranks stay in step even when one
    // failed; a failure shows as a negative time everywhere.
    if (!status.ok()) seconds = -1e30;
    double slowest[2] = {seconds, -seconds};
    const absl::Status reduced =
        world.AllReduce(slowest, slowest, 2, distributed::ElementType::kFloat64,
                        distributed::ReduceOp::kMax, host);
    if (!reduced.ok()) status = reduced;
    if (status.ok() && -slowest[1] < 0) {
      status = absl::InternalError("a call failed on another rank");
    }
    if (!status.ok()) break;
    state.SetIterationTime(slowest[0]);
  }
  omp_set_num_threads(threads);
  if (!status.ok()) {
    state.SkipWithError(std::string(status.message()).c_str());
    return;
  }
  state.counters["threads"] = whole ? omp_get_num_procs() : threads;
  if (whole) return;

  // Every rank's counters, to rank 0.
  std::vector<uint64_t> all(kNumCounters * ranks);
  status = world.AllGather(counters, all.data(), sizeof(counters), host);
  if (!status.ok()) {
    state.SkipWithError(std::string(status.message()).c_str());
    return;
  }
  const int used = c.backward ? kNumCounters : kBwdSent;
  int mismatches = 0;
  for (int r = 0; r < ranks; ++r) {
    const std::vector<uint64_t> model =
        ModelCounters(problem, c.implementation, r);
    for (int i = 0; i < used; ++i) {
      const uint64_t measured = all[r * kNumCounters + i];
      state.counters[absl::StrCat(kCounterNames[i], "_r", r)] =
          static_cast<double>(measured);
      if (measured != model[i]) ++mismatches;
    }
  }
  state.counters["agreement"] =
      static_cast<double>(distributed::AgreementBytes() * (ranks - 1));
  state.counters["model_mismatch"] = mismatches;
}

void RegisterAll() {
  for (const char* config : {"A", "L"}) {
    for (bool causal : {false, true}) {
      for (bool backward : {false, true}) {
        for (const char* name : {"improved", "distributed", "ring"}) {
          const Case c{config, name, causal, backward};
          const std::string label = absl::StrCat(
              name, std::string(name) == "improved" ? "/whole" : "", "/",
              config, "/n:", g_seq_len, "/P:", g_world->size(),
              causal ? "/causal" : "/full", backward ? "/fwd_bwd" : "/fwd");
          benchmark::RegisterBenchmark(label.c_str(), RunCase, c)
              ->Unit(benchmark::kMillisecond)
              ->UseManualTime()
              ->Iterations(g_iterations);
        }
      }
    }
  }
}

// Reports nothing: the reporter of ranks other than 0.
class SilentReporter : public benchmark::BenchmarkReporter {
 public:
  bool ReportContext(const Context&) override { return true; }
  void ReportRuns(const std::vector<Run>&) override {}
};

// Removes this benchmark's own flags (--sp_n=, --sp_iterations=) from argv.
bool ParseOwnFlags(int* argc, char** argv) {
  int kept = 1;
  for (int i = 1; i < *argc; ++i) {
    const char* arg = argv[i];
    if (std::strncmp(arg, "--sp_n=", 7) == 0) {
      g_seq_len = std::atoll(arg + 7);
    } else if (std::strncmp(arg, "--sp_iterations=", 16) == 0) {
      g_iterations = std::atoll(arg + 16);
    } else {
      argv[kept++] = argv[i];
    }
  }
  *argc = kept;
  return g_seq_len > 0 && g_iterations > 0;
}

}  // namespace
}  // namespace dilated

int main(int argc, char** argv) {
  // MPI first: every rank must exist before any benchmark runs.
  dilated::distributed::MpiOptions options;
  options.timeout = absl::Minutes(10);
  absl::StatusOr<std::unique_ptr<dilated::distributed::Communicator>> world =
      dilated::distributed::CreateMpiCommunicator(options);
  if (!world.ok()) {
    std::fprintf(stderr, "sequence_parallel_benchmark: %s\n",
                 world.status().ToString().c_str());
    return 1;
  }
  dilated::g_world = world->get();
  if (!dilated::ParseOwnFlags(&argc, argv)) {
    std::fprintf(stderr,
                 "sequence_parallel_benchmark: --sp_n and "
                 "--sp_iterations must be positive\n");
    return 1;
  }
  if (dilated::g_seq_len % dilated::g_world->size() != 0) {
    std::fprintf(stderr,
                 "sequence_parallel_benchmark: --sp_n must be a "
                 "multiple of the number of ranks\n");
    return 1;
  }
  // Only rank 0 writes --benchmark_out: the others' file reporter writes to
  // /dev/null, so that they never truncate rank 0's file.
  static char kNoFile[] = "--benchmark_out=/dev/null";
  if (dilated::g_world->rank() != 0) {
    for (int i = 1; i < argc; ++i) {
      if (std::strncmp(argv[i], "--benchmark_out=", 16) == 0) argv[i] = kNoFile;
    }
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("ranks",
                              std::to_string(dilated::g_world->size()));
  dilated::RegisterAll();
  if (dilated::g_world->rank() == 0) {
    benchmark::RunSpecifiedBenchmarks();
  } else {
    dilated::SilentReporter silent;
    benchmark::RunSpecifiedBenchmarks(&silent);
  }
  benchmark::Shutdown();
  return 0;
}
