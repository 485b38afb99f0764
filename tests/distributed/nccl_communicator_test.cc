// The NCCL engine on two or more GPUs of one machine, one process per rank
// (GPU rank % device count), launched by hand or by mpirun:
//
//   export DA_NCCL_ID_FILE=/tmp/nccl_id.$$   # new for every run
//   for r in 0 1; do DA_RANK=$r DA_WORLD_SIZE=2 ./nccl_communicator_test & done
//   wait
//
// Without a rank in the environment or with fewer than two GPUs the tests
// are skipped.

#include "distributed/nccl_communicator.h"

#include <cuda_runtime_api.h>

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "distributed/communicator.h"
#include "gtest/gtest.h"

namespace dilated {
namespace distributed {
namespace {

// This rank's GPU, or -1 without a rank in the environment or two GPUs.
int TestDevice() {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices < 2) return -1;
  const char* rank = std::getenv("DA_RANK");
  if (rank == nullptr) rank = std::getenv("OMPI_COMM_WORLD_RANK");
  if (rank == nullptr) return -1;
  return std::atoi(rank) % devices;
}

// The communicator of the tests, created by the first; null when skipped.
Communicator* Comm() {
  static Communicator* const comm = []() -> Communicator* {
    if (TestDevice() < 0) return nullptr;
    NcclOptions options;
    options.device = TestDevice();
    options.timeout = absl::Seconds(60);
    absl::StatusOr<std::unique_ptr<Communicator>> created =
        CreateNcclCommunicatorFromEnvironment(options);
    if (!created.ok()) {
      ADD_FAILURE() << created.status();
      return nullptr;
    }
    return created->release();
  }();
  return comm;
}

#define DA_NEED_COMM()                                        \
  Communicator* comm = Comm();                                \
  if (comm == nullptr) GTEST_SKIP() << "no ranks or no GPUs"; \
  const Buffers host { Device::Cpu(), nullptr }

TEST(NcclCommunicatorTest, HostAllReduceAndBarrier) {
  DA_NEED_COMM();
  EXPECT_EQ(comm->engine(), "nccl");
  const int n = comm->size();
  std::vector<int64_t> data(1000);
  for (int i = 0; i < 1000; ++i) data[i] = comm->rank() * 1000 + i;
  ASSERT_TRUE(comm->AllReduce(data.data(), data.data(), 1000,
                              ElementType::kInt64, ReduceOp::kSum, host)
                  .ok());
  for (int i = 0; i < 1000; ++i) {
    ASSERT_EQ(data[i], int64_t{1000} * n * (n - 1) / 2 + int64_t{n} * i);
  }
  EXPECT_TRUE(comm->Barrier().ok());
}

TEST(NcclCommunicatorTest, HostAllGatherAndReduceScatter) {
  DA_NEED_COMM();
  const int n = comm->size();
  std::vector<float> mine(256, static_cast<float>(comm->rank() + 1));
  std::vector<float> all(256 * n);
  ASSERT_TRUE(comm->AllGather(mine.data(), all.data(), 256 * 4, host).ok());
  for (int r = 0; r < n; ++r) EXPECT_EQ(all[r * 256 + 7], r + 1.0f);
  std::vector<float> block(256);
  ASSERT_TRUE(comm->ReduceScatter(all.data(), block.data(), 256,
                                  ElementType::kFloat32, ReduceOp::kMax, host)
                  .ok());
  EXPECT_EQ(block[0], static_cast<float>(comm->rank() + 1));
}

TEST(NcclCommunicatorTest, DeviceRingStepOverlapsTheCallersStream) {
  DA_NEED_COMM();
  const int n = comm->size();
  const int next = (comm->rank() + 1) % n;
  const int previous = (comm->rank() + n - 1) % n;
  const size_t count = 1 << 20;
  std::vector<int32_t> host_send(count, comm->rank());
  ASSERT_EQ(cudaSetDevice(TestDevice()), cudaSuccess);
  int32_t* device = nullptr;
  ASSERT_EQ(cudaMalloc(reinterpret_cast<void**>(&device),
                       2 * count * sizeof(int32_t)),
            cudaSuccess);
  cudaStream_t stream;
  ASSERT_EQ(cudaStreamCreate(&stream), cudaSuccess);
  ASSERT_EQ(cudaMemcpyAsync(device, host_send.data(), count * sizeof(int32_t),
                            cudaMemcpyHostToDevice, stream),
            cudaSuccess);
  const Buffers on_device{Device::Cuda(TestDevice()), stream};
  comm->ResetCounters();
  const Transfer transfers[] = {
      Transfer::Send(next, device, count * sizeof(int32_t)),
      Transfer::Receive(previous, device + count, count * sizeof(int32_t))};
  absl::StatusOr<PendingExchange> pending =
      comm->StartExchange(transfers, on_device);
  ASSERT_TRUE(pending.ok()) << pending.status();
  ASSERT_TRUE(comm->FinishExchange(*std::move(pending)).ok());
  std::vector<int32_t> got(count);
  ASSERT_EQ(cudaMemcpyAsync(got.data(), device + count, count * sizeof(int32_t),
                            cudaMemcpyDeviceToHost, stream),
            cudaSuccess);
  ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
  EXPECT_EQ(got[0], previous);
  EXPECT_EQ(got[count - 1], previous);
  EXPECT_EQ(comm->bytes_sent(), count * sizeof(int32_t));
  cudaStreamDestroy(stream);
  cudaFree(device);
}

}  // namespace
}  // namespace distributed
}  // namespace dilated
