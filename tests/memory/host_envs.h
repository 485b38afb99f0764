// File: host_envs.h
//
// Test environments (see allocator_conformance.h) for the allocators that
// serve host memory. Shared by the conformance suite and the model test.

#ifndef TESTS_MEMORY_HOST_ENVS_H_
#define TESTS_MEMORY_HOST_ENVS_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>

#include "gtest/gtest.h"
#include "memory/host_allocator.h"
#include "memory/pool_allocator.h"
#include "memory/tracking_allocator.h"

namespace dilated {
namespace memory {

// Memory the test can read and write directly.
class HostMemoryEnv {
 public:
  void Fill(void* p, size_t n, uint8_t value) { std::memset(p, value, n); }
  bool Holds(const void* p, size_t n, uint8_t value) {
    const auto* bytes = static_cast<const uint8_t*>(p);
    for (size_t i = 0; i < n; ++i) {
      if (bytes[i] != value) return false;
    }
    return true;
  }
};

class HostEnv : public HostMemoryEnv {
 public:
  Allocator& allocator() { return host_; }

 private:
  HostAllocator host_;
};

class TrackingEnv : public HostMemoryEnv {
 public:
  TrackingEnv() : tracking_(&host_) {}
  Allocator& allocator() { return tracking_; }

 private:
  HostAllocator host_;
  TrackingAllocator tracking_;
};

// A pool whose upstream is tracked: when the pool dies, every segment it
// reserved must have gone back.
class PoolEnv : public HostMemoryEnv {
 public:
  PoolEnv()
      : upstream_(&host_), pool_(std::make_unique<PoolAllocator>(&upstream_)) {}
  ~PoolEnv() {
    pool_.reset();
    EXPECT_TRUE(upstream_.CheckNoLeaks().ok()) << upstream_.CheckNoLeaks();
  }
  Allocator& allocator() { return *pool_; }

 private:
  HostAllocator host_;
  TrackingAllocator upstream_;
  std::unique_ptr<PoolAllocator> pool_;
};

// A pool over a pool: the inner one hands out 64 KiB-aligned segments of
// odd sizes, and the outer one must still align and account correctly.
class PoolOverPoolEnv : public HostMemoryEnv {
 public:
  PoolOverPoolEnv() : inner_(&host_), outer_(&inner_) {}
  Allocator& allocator() { return outer_; }

 private:
  HostAllocator host_;
  PoolAllocator inner_;
  PoolAllocator outer_;
};

}  // namespace memory
}  // namespace dilated

#endif  // TESTS_MEMORY_HOST_ENVS_H_
