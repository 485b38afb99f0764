// The MPI engine on every rank of mpirun (2 and 4 ranks, see BUILD.bazel).
// Expected values are computed on each rank from the formula every rank
// uses for its input, never by another collective.

#include "distributed/mpi_communicator.h"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "distributed/communicator.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dilated {
namespace distributed {
namespace {

using ::testing::HasSubstr;

const Buffers kHost{Device::Cpu(), nullptr};

// The communicator of every test but the fault test; created by the first
// test, which every rank runs first.
Communicator& Comm() {
  static Communicator* const comm = [] {
    MpiOptions options;
    options.timeout = absl::Seconds(30);
    absl::StatusOr<std::unique_ptr<Communicator>> created =
        CreateMpiCommunicator(options);
    if (!created.ok()) {
      ADD_FAILURE() << created.status();
      std::abort();
    }
    return created->release();
  }();
  return *comm;
}

// Byte i of rank r's message to rank `to` in the tests.
uint8_t Pattern(int r, int to, size_t i) {
  return static_cast<uint8_t>(r * 37 + to * 11 + i * 7 + 1);
}

TEST(MpiCommunicatorTest, RanksOfTheWorld) {
  Communicator& comm = Comm();
  EXPECT_EQ(comm.engine(), "mpi");
  EXPECT_GE(comm.size(), 2);
  EXPECT_GE(comm.rank(), 0);
  EXPECT_LT(comm.rank(), comm.size());
}

TEST(MpiCommunicatorTest, AllGather) {
  Communicator& comm = Comm();
  const int n = comm.size();
  for (const size_t bytes : {size_t{1}, size_t{1001}, size_t{1} << 20}) {
    std::vector<uint8_t> send(bytes);
    for (size_t i = 0; i < bytes; ++i) send[i] = Pattern(comm.rank(), 0, i);
    std::vector<uint8_t> recv(bytes * n);
    comm.ResetCounters();
    ASSERT_TRUE(comm.AllGather(send.data(), recv.data(), bytes, kHost).ok());
    for (int r = 0; r < n; ++r) {
      for (size_t i = 0; i < bytes; ++i) {
        ASSERT_EQ(recv[r * bytes + i], Pattern(r, 0, i))
            << "rank " << r << " byte " << i << " of " << bytes;
      }
    }
    EXPECT_EQ(comm.bytes_sent(), bytes * (n - 1));
    EXPECT_EQ(comm.bytes_received(), bytes * (n - 1));
  }
}

// Element i of rank r's reduction input: small integers, exact in every
// element type, and different on every rank.
int64_t Input(int r, int64_t i) { return (r * 5 + i * 3) % 13 + r % 2; }

template <typename T>
T Expected(int n, int64_t i, ReduceOp op) {
  int64_t result = Input(0, i);
  for (int r = 1; r < n; ++r) {
    const int64_t v = Input(r, i);
    switch (op) {
      case ReduceOp::kSum:
        result += v;
        break;
      case ReduceOp::kMax:
        result = std::max(result, v);
        break;
      case ReduceOp::kMin:
        result = std::min(result, v);
        break;
    }
  }
  return static_cast<T>(result);
}

template <typename T>
void CheckAllReduce(ElementType type, ReduceOp op, bool in_place) {
  Communicator& comm = Comm();
  const int n = comm.size();
  const int64_t count = 1237;
  std::vector<T> send(count);
  for (int64_t i = 0; i < count; ++i)
    send[i] = static_cast<T>(Input(comm.rank(), i));
  std::vector<T> recv(count, T(-1));
  T* out = in_place ? send.data() : recv.data();
  comm.ResetCounters();
  ASSERT_TRUE(comm.AllReduce(send.data(), out, count, type, op, kHost).ok());
  for (int64_t i = 0; i < count; ++i) {
    ASSERT_EQ(out[i], Expected<T>(n, i, op))
        << "element " << i << " op " << static_cast<int>(op);
  }
  const uint64_t bytes = count * sizeof(T);
  EXPECT_EQ(comm.bytes_sent(), 2 * (n - 1) * bytes / n);
  EXPECT_EQ(comm.bytes_received(), 2 * (n - 1) * bytes / n);
}

template <typename T>
void CheckReduceScatter(ElementType type, ReduceOp op) {
  Communicator& comm = Comm();
  const int n = comm.size();
  const int64_t count = 301;
  std::vector<T> send(count * n);
  for (int64_t i = 0; i < count * n; ++i) {
    send[i] = static_cast<T>(Input(comm.rank(), i));
  }
  std::vector<T> recv(count, T(-1));
  comm.ResetCounters();
  ASSERT_TRUE(
      comm.ReduceScatter(send.data(), recv.data(), count, type, op, kHost)
          .ok());
  for (int64_t i = 0; i < count; ++i) {
    ASSERT_EQ(recv[i], Expected<T>(n, comm.rank() * count + i, op))
        << "element " << i << " op " << static_cast<int>(op);
  }
  EXPECT_EQ(comm.bytes_sent(), (n - 1) * count * sizeof(T));
  EXPECT_EQ(comm.bytes_received(), (n - 1) * count * sizeof(T));
}

TEST(MpiCommunicatorTest, AllReduceEveryTypeAndOp) {
  for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kMax, ReduceOp::kMin}) {
    for (bool in_place : {false, true}) {
      CheckAllReduce<float>(ElementType::kFloat32, op, in_place);
      CheckAllReduce<double>(ElementType::kFloat64, op, in_place);
      CheckAllReduce<int32_t>(ElementType::kInt32, op, in_place);
      CheckAllReduce<int64_t>(ElementType::kInt64, op, in_place);
      CheckAllReduce<uint8_t>(ElementType::kUInt8, op, in_place);
    }
  }
}

TEST(MpiCommunicatorTest, ReduceScatterEveryTypeAndOp) {
  for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kMax, ReduceOp::kMin}) {
    CheckReduceScatter<float>(ElementType::kFloat32, op);
    CheckReduceScatter<double>(ElementType::kFloat64, op);
    CheckReduceScatter<int32_t>(ElementType::kInt32, op);
    CheckReduceScatter<int64_t>(ElementType::kInt64, op);
    CheckReduceScatter<uint8_t>(ElementType::kUInt8, op);
  }
}

TEST(MpiCommunicatorTest, BarrierWaitsForTheLastRank) {
  Communicator& comm = Comm();
  ASSERT_TRUE(comm.Barrier().ok());
  const absl::Duration late = absl::Milliseconds(300);
  if (comm.rank() == 0) absl::SleepFor(late);
  const absl::Time start = absl::Now();
  ASSERT_TRUE(comm.Barrier().ok());
  if (comm.rank() != 0) {
    // The others waited for rank 0 (minus what the first barrier's exit
    // skew and scheduling could take off).
    EXPECT_GE(absl::Now() - start, late / 2);
  }
}

TEST(MpiCommunicatorTest, RingStep) {
  Communicator& comm = Comm();
  const int n = comm.size();
  const int next = (comm.rank() + 1) % n;
  const int previous = (comm.rank() + n - 1) % n;
  const size_t bytes = 65536 + 3;
  std::vector<uint8_t> send(bytes), recv(bytes);
  for (size_t i = 0; i < bytes; ++i) send[i] = Pattern(comm.rank(), next, i);
  const Transfer transfers[] = {
      Transfer::Send(next, send.data(), bytes),
      Transfer::Receive(previous, recv.data(), bytes)};
  comm.ResetCounters();
  ASSERT_TRUE(comm.Exchange(transfers, kHost).ok());
  for (size_t i = 0; i < bytes; ++i) {
    ASSERT_EQ(recv[i], Pattern(previous, comm.rank(), i)) << "byte " << i;
  }
  EXPECT_EQ(comm.bytes_sent(), bytes);
  EXPECT_EQ(comm.bytes_received(), bytes);
}

// Each pair gets a message of its own size, so that a mix-up shows.
size_t PairBytes(int from, int to) { return 100 + 10 * from + to; }

TEST(MpiCommunicatorTest, AllPairs) {
  Communicator& comm = Comm();
  const int n = comm.size();
  const int me = comm.rank();
  std::vector<std::vector<uint8_t>> sends(n), recvs(n);
  std::vector<Transfer> transfers;
  uint64_t sent = 0;
  uint64_t received = 0;
  for (int peer = 0; peer < n; ++peer) {
    if (peer == me) continue;
    sends[peer].resize(PairBytes(me, peer));
    for (size_t i = 0; i < sends[peer].size(); ++i) {
      sends[peer][i] = Pattern(me, peer, i);
    }
    recvs[peer].resize(PairBytes(peer, me));
    transfers.push_back(
        Transfer::Receive(peer, recvs[peer].data(), recvs[peer].size()));
    transfers.push_back(
        Transfer::Send(peer, sends[peer].data(), sends[peer].size()));
    sent += sends[peer].size();
    received += recvs[peer].size();
  }
  comm.ResetCounters();
  ASSERT_TRUE(comm.Exchange(transfers, kHost).ok());
  for (int peer = 0; peer < n; ++peer) {
    for (size_t i = 0; i < recvs[peer].size(); ++i) {
      ASSERT_EQ(recvs[peer][i], Pattern(peer, me, i))
          << "from " << peer << " byte " << i;
    }
  }
  EXPECT_EQ(comm.bytes_sent(), sent);
  EXPECT_EQ(comm.bytes_received(), received);
}

TEST(MpiCommunicatorTest, MessagesToOnePeerKeepTheirOrder) {
  Communicator& comm = Comm();
  const int n = comm.size();
  const int next = (comm.rank() + 1) % n;
  const int previous = (comm.rank() + n - 1) % n;
  std::vector<int32_t> first = {comm.rank(), 1}, second = {comm.rank(), 2};
  std::vector<int32_t> got_first(2, -1), got_second(2, -1);
  const Transfer transfers[] = {
      Transfer::Send(next, first.data(), 8),
      Transfer::Send(next, second.data(), 8),
      Transfer::Receive(previous, got_first.data(), 8),
      Transfer::Receive(previous, got_second.data(), 8),
  };
  ASSERT_TRUE(comm.Exchange(transfers, kHost).ok());
  EXPECT_EQ(got_first, (std::vector<int32_t>{previous, 1}));
  EXPECT_EQ(got_second, (std::vector<int32_t>{previous, 2}));
}

TEST(MpiCommunicatorTest, ComputeWhileAnExchangeTravels) {
  Communicator& comm = Comm();
  const int n = comm.size();
  const int next = (comm.rank() + 1) % n;
  const int previous = (comm.rank() + n - 1) % n;
  const size_t count = 1 << 18;
  std::vector<double> send(count), recv(count);
  for (size_t i = 0; i < count; ++i) send[i] = comm.rank() * 1e6 + i;
  const Transfer transfers[] = {
      Transfer::Send(next, send.data(), count * sizeof(double)),
      Transfer::Receive(previous, recv.data(), count * sizeof(double))};
  comm.ResetCounters();
  absl::StatusOr<PendingExchange> pending =
      comm.StartExchange(transfers, kHost);
  ASSERT_TRUE(pending.ok()) << pending.status();
  EXPECT_TRUE(pending->active());

  // Computation of this rank's own, independent of the messages.
  std::vector<double> work(count);
  std::iota(work.begin(), work.end(), 0.0);
  const double total = std::accumulate(work.begin(), work.end(), 0.0);
  EXPECT_EQ(total, static_cast<double>(count) * (count - 1) / 2);
  EXPECT_EQ(comm.bytes_sent(), 0u);  // Counted when finished.

  PendingExchange exchange = *std::move(pending);
  ASSERT_TRUE(comm.FinishExchange(std::move(exchange)).ok());
  for (size_t i = 0; i < count; ++i) {
    ASSERT_EQ(recv[i], previous * 1e6 + i) << "element " << i;
  }
  EXPECT_EQ(comm.bytes_sent(), count * sizeof(double));
  EXPECT_EQ(comm.bytes_received(), count * sizeof(double));
  // Finishing twice is refused.
  EXPECT_EQ(comm.FinishExchange(std::move(exchange)).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(MpiCommunicatorTest, CountersAddUpOverASequence) {
  Communicator& comm = Comm();
  const uint64_t n = comm.size();
  const int next = (comm.rank() + 1) % n;
  const int previous = (comm.rank() + n - 1) % n;
  std::vector<float> a(1024 * n), b(1024 * n);
  comm.ResetCounters();
  ASSERT_TRUE(comm.AllGather(a.data(), b.data(), 4096, kHost).ok());
  ASSERT_TRUE(comm.ReduceScatter(a.data(), b.data(), 1024,
                                 ElementType::kFloat32, ReduceOp::kSum, kHost)
                  .ok());
  ASSERT_TRUE(comm.AllReduce(a.data(), b.data(), 1024, ElementType::kFloat32,
                             ReduceOp::kSum, kHost)
                  .ok());
  ASSERT_TRUE(comm.Barrier().ok());
  const Transfer ring[] = {Transfer::Send(next, a.data(), 100),
                           Transfer::Receive(previous, b.data(), 100)};
  ASSERT_TRUE(comm.Exchange(ring, kHost).ok());
  const uint64_t expected =
      4096 * (n - 1) + 4096 * (n - 1) + 2 * (n - 1) * 4096 / n + 100;
  EXPECT_EQ(comm.bytes_sent(), expected);
  EXPECT_EQ(comm.bytes_received(), expected);
}

TEST(MpiCommunicatorTest, BadArguments) {
  Communicator& comm = Comm();
  char byte = 0;
  const Transfer self[] = {Transfer::Send(comm.rank(), &byte, 1)};
  EXPECT_EQ(comm.Exchange(self, kHost).code(),
            absl::StatusCode::kInvalidArgument);
  const Transfer beyond[] = {Transfer::Receive(comm.size(), &byte, 1)};
  EXPECT_EQ(comm.Exchange(beyond, kHost).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(comm.AllReduce(&byte, &byte, -1, ElementType::kUInt8,
                           ReduceOp::kSum, kHost)
                .code(),
            absl::StatusCode::kInvalidArgument);
  MpiOptions options;
  options.timeout = absl::ZeroDuration();
  EXPECT_EQ(CreateMpiCommunicator(options).status().code(),
            absl::StatusCode::kInvalidArgument);
  // The communicator still works: nothing reached MPI.
  EXPECT_TRUE(comm.Barrier().ok());
}

#ifndef DA_COMM_TEST_HAS_CUDA
TEST(MpiCommunicatorTest, DeviceBuffersNeedCuda) {
  Communicator& comm = Comm();
  std::vector<char> send(8), recv(8 * comm.size());
  const absl::Status status =
      comm.AllGather(send.data(), recv.data(), 8, Buffers{Device::Cuda(0)});
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_TRUE(comm.Barrier().ok());
}
#endif

// The last rank skips an all-reduce that the others make: they get
// DeadlineExceeded after the short timeout, and their communicator refuses
// later calls. The last rank then makes the matching call, late, so that
// the abandoned operation completes and every process exits cleanly.
TEST(MpiCommunicatorTest, AMissingRankIsATimeout) {
  Communicator& world = Comm();
  const int absent = world.size() - 1;
  const absl::Duration timeout = absl::Seconds(2);
  // Declared before the communicator: the abandoned all-reduce may write
  // them until the communicator is destroyed.
  std::vector<int32_t> send(16, world.rank()), recv(16, -1);
  {
    MpiOptions options;
    options.timeout = timeout;
    absl::StatusOr<std::unique_ptr<Communicator>> comm =
        CreateMpiCommunicator(options);
    ASSERT_TRUE(comm.ok()) << comm.status();
    if (world.rank() != absent) {
      const absl::Time start = absl::Now();
      const absl::Status status =
          (*comm)->AllReduce(send.data(), recv.data(), 16, ElementType::kInt32,
                             ReduceOp::kSum, kHost);
      const absl::Duration waited = absl::Now() - start;
      EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded) << status;
      EXPECT_THAT(std::string(status.message()),
                  HasSubstr("MPI all-reduce did not complete within 2s"));
      EXPECT_GE(waited, timeout);
      EXPECT_LT(waited, timeout + absl::Seconds(5));
      const absl::Status later = (*comm)->Barrier();
      EXPECT_EQ(later.code(), absl::StatusCode::kFailedPrecondition) << later;
    } else {
      absl::SleepFor(timeout + absl::Milliseconds(500));
      // Late, but the others' all-reduce is still posted: it completes
      // while they wait in the barrier below.
      EXPECT_TRUE((*comm)
                      ->AllReduce(send.data(), recv.data(), 16,
                                  ElementType::kInt32, ReduceOp::kSum, kHost)
                      .ok());
    }
    ASSERT_TRUE(world.Barrier().ok());
  }
  const int32_t sum = world.size() * (world.size() - 1) / 2;
  if (world.rank() == absent) {
    EXPECT_EQ(recv, std::vector<int32_t>(16, sum));
  }
}

}  // namespace
}  // namespace distributed
}  // namespace dilated
