#include "memory/default_allocator.h"

#include <string>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "memory/host_allocator.h"
#include "memory/pool_allocator.h"

namespace dilated {
namespace memory {
namespace {

TEST(DefaultAllocatorTest, HostDefaultIsTheDirectHostAllocator) {
  absl::StatusOr<Allocator*> host = DefaultAllocator(Device::Cpu());
  ASSERT_TRUE(host.ok()) << host.status();
  EXPECT_EQ((*host)->name(), "host");
  EXPECT_EQ((*host)->space(), Device::Cpu());
  // The same object every time.
  EXPECT_EQ(*DefaultAllocator(Device::Cpu()), *host);
}

TEST(DefaultAllocatorTest, SetReplacesAndRestores) {
  Allocator* builtin = *DefaultAllocator(Device::Cpu());
  PoolAllocator pool(builtin);
  EXPECT_EQ(SetDefaultAllocator(Device::Cpu(), &pool), nullptr);
  EXPECT_EQ(*DefaultAllocator(Device::Cpu()), &pool);
  HostAllocator other;
  EXPECT_EQ(SetDefaultAllocator(Device::Cpu(), &other), &pool);
  EXPECT_EQ(*DefaultAllocator(Device::Cpu()), &other);
  EXPECT_EQ(SetDefaultAllocator(Device::Cpu(), nullptr), &other);
  EXPECT_EQ(*DefaultAllocator(Device::Cpu()), builtin);
}

TEST(DefaultAllocatorTest, DeviceWithoutABuiltinIsFailedPrecondition) {
  absl::StatusOr<Allocator*> device = DefaultAllocator(Device::Cuda(3));
  ASSERT_FALSE(device.ok());
  EXPECT_EQ(device.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(device.status().message().find("cuda:3"), std::string::npos);
  EXPECT_NE(device.status().message().find("SetDefaultAllocator"),
            std::string::npos);
}

TEST(DefaultAllocatorDeathTest, InstallingForTheWrongSpaceDies) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        HostAllocator host;
        SetDefaultAllocator(Device::Cuda(0), &host);
      },
      "SetDefaultAllocator\\(cuda:0\\): the allocator 'host' serves cpu");
}

}  // namespace
}  // namespace memory
}  // namespace dilated
