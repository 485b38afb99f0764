// sequence_parallel_cuda_run: one sequence-parallel configuration on CUDA
// tensors, every MPI rank holding its shard (docs/DISTRIBUTED.md). Prints,
// from rank 0, one line per rank: time per call, the workspace the call
// took on top of the tensors (peak of a tracking allocator), and the bytes
// the rank sent and received per call.
//
//   bazel/mpi_run.sh 4 sequence_parallel_cuda_run --impl=ring --n=1048576
//       --segment_lengths=2048,4096,8192 --dilation_rates=1,2,4 [--backward]
//
// Tensors hold zeros: the work does not depend on the values.

#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "attention/registry.h"
#include "distributed/communicator.h"
#include "distributed/mpi_communicator.h"
#include "distributed/nccl_communicator.h"
#include "memory/default_allocator.h"
#include "memory/tracking_allocator.h"

ABSL_FLAG(std::string, impl, "ring", "ring or distributed");
ABSL_FLAG(std::string, comm, "mpi",
          "mpi, or nccl (bootstrapped over MPI; one rank per GPU)");
ABSL_FLAG(int64_t, n, 1 << 20, "positions of the whole sequence");
ABSL_FLAG(int64_t, batch, 1, "batch");
ABSL_FLAG(int64_t, heads, 8, "heads");
ABSL_FLAG(int64_t, head_dim, 64, "head_dim");
ABSL_FLAG(std::string, segment_lengths, "2048,4096,8192", "segments");
ABSL_FLAG(std::string, dilation_rates, "1,2,4", "rates");
ABSL_FLAG(std::string, dtype, "f16", "f16 or bf16");
ABSL_FLAG(bool, causal, false, "causal mask");
ABSL_FLAG(bool, zigzag, false, "zigzag shard placement");
ABSL_FLAG(bool, backward, false, "time forward + backward");
ABSL_FLAG(int, iters, 5, "timed calls after one warm-up call");

namespace dilated {
namespace {

struct RankStats {
  double ms_per_call;
  double peak_workspace_bytes;
  double bytes_sent;
  double bytes_received;
};

std::vector<int64_t> ParseList(const std::string& text) {
  std::vector<int64_t> values;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    int64_t value = 0;
    if (absl::SimpleAtoi(part, &value)) values.push_back(value);
  }
  return values;
}

int Run() {
  absl::StatusOr<std::unique_ptr<distributed::Communicator>> mpi =
      distributed::CreateMpiCommunicator({});
  absl::StatusOr<std::unique_ptr<distributed::Communicator>> comm =
      std::move(mpi);
  if (comm.ok() && absl::GetFlag(FLAGS_comm) == "nccl") {
    mpi = std::move(comm);
    comm = distributed::CreateNcclCommunicator({}, **mpi);
  }
  if (!comm.ok()) {
    std::fprintf(stderr, "%s\n", comm.status().ToString().c_str());
    return 1;
  }
  const int64_t n = absl::GetFlag(FLAGS_n);
  const int64_t l = n / (*comm)->size();
  const int64_t b = absl::GetFlag(FLAGS_batch);
  const int64_t h = absl::GetFlag(FLAGS_heads);
  const int64_t d = absl::GetFlag(FLAGS_head_dim);
  const DType dtype =
      absl::GetFlag(FLAGS_dtype) == "bf16" ? DType::kBFloat16 : DType::kFloat16;
  AttentionConfig config;
  config.segment_lengths = ParseList(absl::GetFlag(FLAGS_segment_lengths));
  config.dilation_rates = ParseList(absl::GetFlag(FLAGS_dilation_rates));
  config.communicator = comm->get();
  if (absl::GetFlag(FLAGS_zigzag)) {
    config.shard_placement = ShardPlacement::kZigzag;
  }
  absl::StatusOr<std::unique_ptr<Attention>> attention =
      CreateAttention(absl::GetFlag(FLAGS_impl), config);
  if (!attention.ok()) {
    std::fprintf(stderr, "%s\n", attention.status().ToString().c_str());
    return 1;
  }

  const size_t bytes = static_cast<size_t>(b * l * h * d) * 2;
  const size_t lse_bytes = static_cast<size_t>(b * h * l) * 4;
  std::vector<void*> buffers;
  const auto device_tensor = [&](size_t size) {
    void* p = nullptr;
    cudaMalloc(&p, size);
    cudaMemset(p, 0, size);
    buffers.push_back(p);
    return p;
  };
  const Device gpu = Device::Cuda(0);
  const auto view = [&](void* p) {
    return TensorView::Contiguous(p, dtype, {b, l, h, d}, gpu);
  };
  TensorView q = view(device_tensor(bytes)), k = view(device_tensor(bytes)),
             v = view(device_tensor(bytes)), out = view(device_tensor(bytes)),
             grad_out = view(device_tensor(bytes)),
             grad_q = view(device_tensor(bytes)),
             grad_k = view(device_tensor(bytes)),
             grad_v = view(device_tensor(bytes));
  TensorView lse = TensorView::Contiguous(device_tensor(lse_bytes),
                                          DType::kFloat32, {b, h, l}, gpu);

  absl::StatusOr<memory::Allocator*> upstream =
      memory::StreamOrderedAllocator(gpu);
  if (!upstream.ok()) return 1;
  memory::TrackingAllocator tracking(*upstream);
  ForwardOptions options;
  options.is_causal = absl::GetFlag(FLAGS_causal);
  options.workspace_allocator = &tracking;
  const bool backward = absl::GetFlag(FLAGS_backward);
  const auto call = [&]() -> absl::Status {
    absl::Status status = (*attention)->Forward(q, k, v, out, options, &lse);
    if (!status.ok() || !backward) return status;
    return (*attention)
        ->Backward(q, k, v, out, lse, grad_out, grad_q, grad_k, grad_v,
                   options);
  };
  absl::Status status = call();
  cudaDeviceSynchronize();
  if (!status.ok()) {
    std::fprintf(stderr, "rank %d: %s\n", (*comm)->rank(),
                 status.ToString().c_str());
    return 1;
  }
  const int iters = absl::GetFlag(FLAGS_iters);
  (*comm)->ResetCounters();
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  cudaEventRecord(start);
  for (int i = 0; i < iters && status.ok(); ++i) status = call();
  cudaEventRecord(stop);
  cudaEventSynchronize(stop);
  float ms = 0;
  cudaEventElapsedTime(&ms, start, stop);
  const RankStats mine{
      ms / iters, static_cast<double>(tracking.GetStats().peak_bytes_in_use),
      static_cast<double>((*comm)->bytes_sent()) / iters,
      static_cast<double>((*comm)->bytes_received()) / iters};
  std::vector<RankStats> all((*comm)->size());
  const absl::Status gathered =
      (*comm)->AllGather(&mine, all.data(), sizeof(RankStats),
                         distributed::Buffers{Device::Cpu(), nullptr});
  if (!status.ok() || !gathered.ok()) {
    std::fprintf(stderr, "rank %d: %s %s\n", (*comm)->rank(),
                 status.ToString().c_str(), gathered.ToString().c_str());
    return 1;
  }
  if ((*comm)->rank() == 0) {
    for (int r = 0; r < (*comm)->size(); ++r) {
      std::printf(
          "%s over %s n=%lld P=%d rank=%d %s%s%s: %.3f ms/call, workspace %.1f "
          "MiB, "
          "sent %.1f MiB, received %.1f MiB per call\n",
          absl::GetFlag(FLAGS_impl).c_str(), (*comm)->engine().c_str(),
          static_cast<long long>(n), (*comm)->size(), r,
          backward ? "fwd+bwd" : "fwd", options.is_causal ? " causal" : "",
          absl::GetFlag(FLAGS_zigzag) ? " zigzag" : "", all[r].ms_per_call,
          all[r].peak_workspace_bytes / (1 << 20),
          all[r].bytes_sent / (1 << 20), all[r].bytes_received / (1 << 20));
    }
  }
  for (void* p : buffers) cudaFree(p);
  return 0;
}

}  // namespace
}  // namespace dilated

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return dilated::Run();
}
