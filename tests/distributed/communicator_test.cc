// Communicator's argument checks and byte counters (through a recording
// engine of rank 1 of 4, so that the counters are not zero) and the
// single-process engine.

#include "distributed/communicator.h"

#include <cstdint>
#include <cstring>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dilated {
namespace distributed {
namespace {

using ::testing::HasSubstr;

const Buffers kHost{Device::Cpu(), nullptr};

// An engine that records what reaches it and moves nothing.
class RecordingCommunicator : public Communicator {
 public:
  RecordingCommunicator(int rank, int size)
      : Communicator(rank, size, absl::Seconds(1)) {}

  std::string engine() const override { return "recording"; }

  int calls = 0;
  std::vector<Transfer> last_transfers;

 private:
  struct State : PendingExchange::State {};

  absl::Status DoAllGather(const void*, void*, size_t,
                           const Buffers&) override {
    ++calls;
    return absl::OkStatus();
  }
  absl::Status DoReduceScatter(const void*, void*, int64_t, ElementType,
                               ReduceOp, const Buffers&) override {
    ++calls;
    return absl::OkStatus();
  }
  absl::Status DoAllReduce(const void*, void*, int64_t, ElementType, ReduceOp,
                           const Buffers&) override {
    ++calls;
    return absl::OkStatus();
  }
  absl::Status DoBarrier() override {
    ++calls;
    return absl::OkStatus();
  }
  absl::StatusOr<PendingExchange> DoStartExchange(
      absl::Span<const Transfer> transfers, const Buffers&) override {
    ++calls;
    last_transfers.assign(transfers.begin(), transfers.end());
    return PendingExchange(std::make_unique<State>());
  }
  absl::Status DoFinishExchange(PendingExchange) override {
    ++calls;
    return absl::OkStatus();
  }
};

TEST(ElementSizeTest, Sizes) {
  EXPECT_EQ(ElementSize(ElementType::kFloat32), 4u);
  EXPECT_EQ(ElementSize(ElementType::kFloat64), 8u);
  EXPECT_EQ(ElementSize(ElementType::kInt32), 4u);
  EXPECT_EQ(ElementSize(ElementType::kInt64), 8u);
  EXPECT_EQ(ElementSize(ElementType::kUInt8), 1u);
}

TEST(CommunicatorCountersTest, FollowTheModel) {
  RecordingCommunicator comm(/*rank=*/1, /*size=*/4);
  std::vector<char> send(4000), recv(16000);

  ASSERT_TRUE(comm.AllGather(send.data(), recv.data(), 1000, kHost).ok());
  EXPECT_EQ(comm.bytes_sent(), 3000u);  // 1000 bytes to each of 3 ranks.
  EXPECT_EQ(comm.bytes_received(), 3000u);

  comm.ResetCounters();
  ASSERT_TRUE(comm.ReduceScatter(send.data(), recv.data(), 250,
                                 ElementType::kFloat32, ReduceOp::kSum, kHost)
                  .ok());
  EXPECT_EQ(comm.bytes_sent(), 3u * 250 * 4);
  EXPECT_EQ(comm.bytes_received(), 3u * 250 * 4);

  comm.ResetCounters();
  ASSERT_TRUE(comm.AllReduce(send.data(), recv.data(), 500,
                             ElementType::kFloat64, ReduceOp::kMax, kHost)
                  .ok());
  // 2 (n - 1) / n of 4000 bytes.
  EXPECT_EQ(comm.bytes_sent(), 6000u);
  EXPECT_EQ(comm.bytes_received(), 6000u);

  comm.ResetCounters();
  // 7 bytes: 2 * 3 * 7 / 4 = 10.5, rounded down.
  ASSERT_TRUE(comm.AllReduce(send.data(), send.data(), 7, ElementType::kUInt8,
                             ReduceOp::kSum, kHost)
                  .ok());
  EXPECT_EQ(comm.bytes_sent(), 10u);

  comm.ResetCounters();
  ASSERT_TRUE(comm.Barrier().ok());
  EXPECT_EQ(comm.bytes_sent(), 0u);

  const std::vector<Transfer> transfers = {
      Transfer::Send(2, send.data(), 100),
      Transfer::Send(0, send.data(), 30),
      Transfer::Receive(0, recv.data(), 70),
      Transfer::Receive(3, recv.data(), 0),
  };
  ASSERT_TRUE(comm.Exchange(transfers, kHost).ok());
  EXPECT_EQ(comm.bytes_sent(), 130u);
  EXPECT_EQ(comm.bytes_received(), 70u);
}

TEST(CommunicatorCountersTest, ExchangeCountsWhenFinished) {
  RecordingCommunicator comm(0, 2);
  char byte = 0;
  const Transfer transfers[] = {Transfer::Send(1, &byte, 1)};
  absl::StatusOr<PendingExchange> pending =
      comm.StartExchange(transfers, kHost);
  ASSERT_TRUE(pending.ok()) << pending.status();
  EXPECT_TRUE(pending->active());
  EXPECT_EQ(comm.bytes_sent(), 0u);
  ASSERT_TRUE(comm.FinishExchange(*std::move(pending)).ok());
  EXPECT_EQ(comm.bytes_sent(), 1u);
}

TEST(CommunicatorChecksTest, ZeroBytesNeverReachTheEngine) {
  RecordingCommunicator comm(0, 4);
  EXPECT_TRUE(comm.AllGather(nullptr, nullptr, 0, kHost).ok());
  EXPECT_TRUE(comm.AllReduce(nullptr, nullptr, 0, ElementType::kInt32,
                             ReduceOp::kSum, kHost)
                  .ok());
  EXPECT_TRUE(comm.ReduceScatter(nullptr, nullptr, 0, ElementType::kInt32,
                                 ReduceOp::kSum, kHost)
                  .ok());
  const Transfer empty[] = {Transfer::Send(1, nullptr, 0),
                            Transfer::Receive(2, nullptr, 0)};
  EXPECT_TRUE(comm.Exchange(empty, kHost).ok());
  EXPECT_EQ(comm.calls, 0);

  char byte = 0;
  const Transfer mixed[] = {Transfer::Send(1, nullptr, 0),
                            Transfer::Receive(3, &byte, 1)};
  ASSERT_TRUE(comm.Exchange(mixed, kHost).ok());
  ASSERT_EQ(comm.last_transfers.size(), 1u);
  EXPECT_EQ(comm.last_transfers[0].peer, 3);
}

void ExpectInvalid(const absl::Status& status, const std::string& part) {
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr(part));
}

TEST(CommunicatorChecksTest, BadArgumentsNameTheArgument) {
  RecordingCommunicator comm(1, 4);
  std::vector<char> buffer(4096);
  char* p = buffer.data();

  ExpectInvalid(comm.AllGather(nullptr, p, 8, kHost), "`send` is null");
  ExpectInvalid(comm.AllGather(p, nullptr, 8, kHost), "`recv` is null");
  ExpectInvalid(comm.AllGather(p, p + 4, 8, kHost), "overlaps");
  ExpectInvalid(comm.ReduceScatter(p, p + 64, -3, ElementType::kInt32,
                                   ReduceOp::kSum, kHost),
                "`count` -3");
  ExpectInvalid(comm.ReduceScatter(p, p + 16, 4, ElementType::kInt32,
                                   ReduceOp::kSum, kHost),
                "overlaps");
  ExpectInvalid(
      comm.AllReduce(p, p + 4, 4, ElementType::kInt32, ReduceOp::kSum, kHost),
      "overlaps");
  ExpectInvalid(comm.AllReduce(p, p, int64_t{1} << 62, ElementType::kInt64,
                               ReduceOp::kSum, kHost),
                "does not fit");
  ExpectInvalid(comm.AllReduce(p, p, 1, static_cast<ElementType>(42),
                               ReduceOp::kSum, kHost),
                "`type` 42");
  ExpectInvalid(comm.AllReduce(p, p, 1, ElementType::kInt32,
                               static_cast<ReduceOp>(9), kHost),
                "`op` 9");
  ExpectInvalid(comm.AllGather(p, p + 8, 1, Buffers{Device::Cuda(-1)}),
                "index -1");

  const Transfer self[] = {Transfer::Send(1, p, 1)};
  ExpectInvalid(comm.Exchange(self, kHost), "transfers[0].peer 1 is this rank");
  const Transfer out[] = {Transfer::Receive(0, p, 1),
                          Transfer::Receive(4, p, 1)};
  ExpectInvalid(comm.Exchange(out, kHost), "transfers[1].peer 4 is out of");
  const Transfer negative[] = {Transfer::Send(-1, p, 1)};
  ExpectInvalid(comm.Exchange(negative, kHost), "peer -1");
  const Transfer null[] = {Transfer::Receive(2, nullptr, 5)};
  ExpectInvalid(comm.Exchange(null, kHost), "transfers[0].data` is null");
  EXPECT_EQ(comm.calls, 0);

  ExpectInvalid(comm.FinishExchange(PendingExchange()), "not active");
}

TEST(CommunicatorChecksTest, PendingExchangeBelongsToItsCommunicator) {
  RecordingCommunicator first(0, 2);
  RecordingCommunicator second(0, 2);
  char byte = 0;
  const Transfer transfers[] = {Transfer::Send(1, &byte, 1)};
  absl::StatusOr<PendingExchange> pending =
      first.StartExchange(transfers, kHost);
  ASSERT_TRUE(pending.ok());
  PendingExchange moved = *std::move(pending);
  EXPECT_FALSE(pending->active());
  ExpectInvalid(second.FinishExchange(std::move(moved)), "another");
}

TEST(SingleProcessCommunicatorTest, CollectivesCopy) {
  std::unique_ptr<Communicator> comm = CreateSingleProcessCommunicator();
  EXPECT_EQ(comm->rank(), 0);
  EXPECT_EQ(comm->size(), 1);
  EXPECT_EQ(comm->engine(), "single");

  std::vector<int32_t> send(100);
  std::iota(send.begin(), send.end(), 7);
  std::vector<int32_t> recv(100, -1);
  ASSERT_TRUE(comm->AllGather(send.data(), recv.data(), 400, kHost).ok());
  EXPECT_EQ(recv, send);

  recv.assign(100, -1);
  ASSERT_TRUE(comm->ReduceScatter(send.data(), recv.data(), 100,
                                  ElementType::kInt32, ReduceOp::kSum, kHost)
                  .ok());
  EXPECT_EQ(recv, send);

  recv.assign(100, -1);
  ASSERT_TRUE(comm->AllReduce(send.data(), recv.data(), 100,
                              ElementType::kInt32, ReduceOp::kMin, kHost)
                  .ok());
  EXPECT_EQ(recv, send);

  std::vector<int32_t> in_place = send;
  ASSERT_TRUE(comm->AllReduce(in_place.data(), in_place.data(), 100,
                              ElementType::kInt32, ReduceOp::kMax, kHost)
                  .ok());
  EXPECT_EQ(in_place, send);

  EXPECT_TRUE(comm->Barrier().ok());
  EXPECT_EQ(comm->bytes_sent(), 0u);
  EXPECT_EQ(comm->bytes_received(), 0u);
}

TEST(SingleProcessCommunicatorTest, ExchangeHasNoPeers) {
  std::unique_ptr<Communicator> comm = CreateSingleProcessCommunicator();
  char byte = 0;
  const Transfer to_self[] = {Transfer::Send(0, &byte, 1)};
  ExpectInvalid(comm->Exchange(to_self, kHost), "no peers");
  const Transfer to_other[] = {Transfer::Receive(1, &byte, 1)};
  ExpectInvalid(comm->Exchange(to_other, kHost), "no peers");
  // Nothing to move is no error.
  EXPECT_TRUE(comm->Exchange({}, kHost).ok());
}

#ifndef DA_COMM_TEST_HAS_CUDA
TEST(SingleProcessCommunicatorTest, DeviceBuffersNeedCuda) {
  std::unique_ptr<Communicator> comm = CreateSingleProcessCommunicator();
  std::vector<char> send(8), recv(8);
  const absl::Status status =
      comm->AllGather(send.data(), recv.data(), 8, Buffers{Device::Cuda(0)});
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("cuda:0"));
}
#endif

}  // namespace
}  // namespace distributed
}  // namespace dilated
