// The conformance suite (allocator_conformance.h) for every host allocator.
#include "tests/memory/allocator_conformance.h"

#include "gtest/gtest.h"
#include "tests/memory/host_envs.h"

namespace dilated {
namespace memory {
namespace {

using HostEnvs =
    ::testing::Types<HostEnv, TrackingEnv, PoolEnv, PoolOverPoolEnv>;
INSTANTIATE_TYPED_TEST_SUITE_P(Host, AllocatorConformanceTest, HostEnvs);

}  // namespace
}  // namespace memory
}  // namespace dilated
