// The CUDA allocators: the conformance suite on device memory, stream-ordered
// reuse on a real GPU, and the CUDA default allocator. Tagged "gpu".
#include "memory/cuda_allocator.h"

#include <cuda_runtime.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "memory/cuda_async_allocator.h"
#include "memory/cuda_pool.h"
#include "memory/cuda_stream_ordering.h"
#include "memory/default_allocator.h"
#include "memory/pool_allocator.h"
#include "memory/tracking_allocator.h"
#include "tests/memory/allocator_conformance.h"

namespace dilated {
namespace memory {
namespace {

// Device memory, written with cudaMemset and read back with cudaMemcpy.
class DeviceMemoryEnv {
 public:
  void Fill(void* p, size_t n, uint8_t value) {
    ASSERT_EQ(cudaMemset(p, value, n), cudaSuccess);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  }
  bool Holds(const void* p, size_t n, uint8_t value) {
    std::vector<uint8_t> host(n);
    if (cudaMemcpy(host.data(), p, n, cudaMemcpyDeviceToHost) != cudaSuccess) {
      return false;
    }
    for (uint8_t b : host) {
      if (b != value) return false;
    }
    return true;
  }
};

class CudaEnv : public DeviceMemoryEnv {
 public:
  CudaEnv() {
    auto created = CudaAllocator::Create(0);
    EXPECT_TRUE(created.ok()) << created.status();
    allocator_ = std::move(*created);
  }
  Allocator& allocator() { return *allocator_; }

 private:
  std::unique_ptr<CudaAllocator> allocator_;
};

class CudaAsyncEnv : public DeviceMemoryEnv {
 public:
  CudaAsyncEnv() {
    auto created = CudaAsyncAllocator::Create(0);
    EXPECT_TRUE(created.ok()) << created.status();
    allocator_ = std::move(*created);
  }
  Allocator& allocator() { return *allocator_; }

 private:
  std::unique_ptr<CudaAsyncAllocator> allocator_;
};

// A device pool over a tracked cudaMalloc: when it dies, every segment must
// have gone back.
class CudaPoolEnv : public DeviceMemoryEnv {
 public:
  CudaPoolEnv() {
    auto device = CudaAllocator::Create(0);
    EXPECT_TRUE(device.ok()) << device.status();
    device_ = std::move(*device);
    upstream_ = std::make_unique<TrackingAllocator>(device_.get());
    auto ordering = CudaStreamOrdering::Create(0);
    EXPECT_TRUE(ordering.ok()) << ordering.status();
    PoolOptions options;
    options.stream_ordering = std::move(*ordering);
    pool_ = std::make_unique<PoolAllocator>(upstream_.get(), options);
  }
  ~CudaPoolEnv() {
    pool_.reset();
    EXPECT_TRUE(upstream_->CheckNoLeaks().ok()) << upstream_->CheckNoLeaks();
  }
  Allocator& allocator() { return *pool_; }

 private:
  std::unique_ptr<CudaAllocator> device_;
  std::unique_ptr<TrackingAllocator> upstream_;
  std::unique_ptr<PoolAllocator> pool_;
};

using CudaEnvs = ::testing::Types<CudaEnv, CudaAsyncEnv, CudaPoolEnv>;
INSTANTIATE_TYPED_TEST_SUITE_P(Cuda, AllocatorConformanceTest, CudaEnvs);

TEST(CudaAllocatorTest, MissingDeviceIsInvalidArgument) {
  auto direct = CudaAllocator::Create(1000);
  EXPECT_EQ(direct.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(direct.status().message().find("device 1000"), std::string::npos);
  auto async = CudaAsyncAllocator::Create(-1);
  EXPECT_EQ(async.status().code(), absl::StatusCode::kInvalidArgument);
  auto pool = MakeCudaPoolAllocator(1000);
  EXPECT_EQ(pool.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(CudaAllocatorTest, NamesAndSpaces) {
  auto direct = *CudaAllocator::Create(0);
  EXPECT_EQ(direct->name(), "cudaMalloc(cuda:0)");
  EXPECT_EQ(direct->space(), Device::Cuda(0));
  auto pool = *MakeCudaPoolAllocator(0);
  EXPECT_EQ(pool->name(), "pool(cudaMalloc(cuda:0))");
  EXPECT_EQ(pool->space(), Device::Cuda(0));
}

void Sleep100ms(void*) {
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
}

// A block freed on stream 1 while stream 1 still has work queued that writes
// it; stream 2 then gets the block and writes it too. Without ordering,
// stream 2's write lands first and stream 1's late write wins.
TEST(CudaPoolTest, BlockFreedOnOneStreamIsReusedOnAnotherOnlyAfterItsWork) {
  auto pool = *MakeCudaPoolAllocator(0);
  cudaStream_t s1, s2;
  ASSERT_EQ(cudaStreamCreateWithFlags(&s1, cudaStreamNonBlocking), cudaSuccess);
  ASSERT_EQ(cudaStreamCreateWithFlags(&s2, cudaStreamNonBlocking), cudaSuccess);
  constexpr size_t kBytes = 4 << 20;
  void* p = *pool->Allocate(kBytes, 256, s1);
  ASSERT_EQ(cudaLaunchHostFunc(s1, Sleep100ms, nullptr), cudaSuccess);
  ASSERT_EQ(cudaMemsetAsync(p, 1, kBytes, s1), cudaSuccess);
  pool->Deallocate(p, kBytes, 256, s1);
  void* q = *pool->Allocate(kBytes, 256, s2);
  ASSERT_EQ(q, p);  // The freed block, merged back in the heap, fits best.
  ASSERT_EQ(cudaMemsetAsync(q, 2, kBytes, s2), cudaSuccess);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  std::vector<uint8_t> host(kBytes);
  ASSERT_EQ(cudaMemcpy(host.data(), q, kBytes, cudaMemcpyDeviceToHost),
            cudaSuccess);
  EXPECT_EQ(host.front(), 2);
  EXPECT_EQ(host.back(), 2);
  pool->Deallocate(q, kBytes, 256, s2);
  cudaStreamDestroy(s1);
  cudaStreamDestroy(s2);
}

TEST(CudaPoolTest, SameStreamReuseNeedsNoSynchronisation) {
  auto pool = *MakeCudaPoolAllocator(0);
  cudaStream_t s;
  ASSERT_EQ(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), cudaSuccess);
  void* p = *pool->Allocate(1 << 20, 256, s);
  ASSERT_EQ(cudaLaunchHostFunc(s, Sleep100ms, nullptr), cudaSuccess);
  pool->Deallocate(p, 1 << 20, 256, s);
  const auto start = std::chrono::steady_clock::now();
  void* q = *pool->Allocate(1 << 20, 256, s);
  const auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(q, p);
  // The host did not wait for the sleeping stream (generous bound: 50 ms).
  EXPECT_LT(waited, std::chrono::milliseconds(50));
  pool->Deallocate(q, 1 << 20, 256, s);
  cudaStreamSynchronize(s);
  cudaStreamDestroy(s);
}

TEST(CudaAsyncAllocatorTest, ReportsTheDriverPoolAndTrimsIt) {
  auto async = *CudaAsyncAllocator::Create(0);
  void* p = *async->Allocate(64 << 20);
  EXPECT_GE(async->GetStats().bytes_reserved, 64 << 20);
  async->Deallocate(p, 64 << 20);
  EXPECT_GE(async->GetStats().bytes_reserved, 64 << 20);  // Kept.
  EXPECT_GE(async->ReleaseCached(), size_t{64} << 20);
  EXPECT_EQ(async->GetStats().bytes_reserved, 0);
}

TEST(CudaDefaultAllocatorTest, DeviceDefaultIsThePool) {
  absl::StatusOr<Allocator*> device = DefaultAllocator(Device::Cuda(0));
  ASSERT_TRUE(device.ok()) << device.status();
  EXPECT_EQ((*device)->name(), "pool(cudaMalloc(cuda:0))");
  EXPECT_EQ(*DefaultAllocator(Device::Cuda(0)), *device);
}

}  // namespace
}  // namespace memory
}  // namespace dilated
