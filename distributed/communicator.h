// File: communicator.h
//
// Communicator: the one interface the sequence-parallel implementations
// ("ring", "distributed") talk through, shaped like memory::Allocator: public
// non-virtual calls check their arguments once, here, and call private
// virtual Do* methods of an engine (MPI, NCCL, or a single process). Errors
// are absl::Status; nothing aborts on bad input and no call waits forever:
// an operation that does not complete within the communicator's timeout
// returns DeadlineExceeded naming the operation.
//
//   absl::StatusOr<std::unique_ptr<Communicator>> comm =
//       dilated::distributed::CreateMpiCommunicator({});
//   if (!comm.ok()) return comm.status();
//   const Buffers host{dilated::Device::Cpu(), nullptr};
//   DA_RETURN_IF_ERROR((*comm)->AllGather(mine, all, bytes, host));
//
// Buffers live on the host or on a CUDA device (`Buffers`); every engine
// takes both: MPI stages device buffers through pinned host memory, NCCL
// stages host buffers through device memory. Device work is ordered on the
// given stream; on return from a call on device buffers the operation may
// still be in flight on that stream (NCCL) or already complete (MPI), so the
// caller orders later work on the same stream in either case.
//
// Every rank of the communicator must make the same sequence of collective
// calls with matching sizes (as in MPI); Exchange pairs each send with the
// peer's receive of the same size.
//
// Counters: bytes_sent() and bytes_received() count the payload of each
// operation that succeeded, as the algorithm sees it, not the engine's
// internal routing. With B the bytes of one call (bytes for AllGather,
// count * ElementSize(type) for the reductions) and n = size():
//   AllGather      B * (n - 1) sent and B * (n - 1) received (every rank's
//                  block reaches every other rank);
//   ReduceScatter  B * (n - 1) each way (each rank sends the n - 1 blocks
//                  that others keep and receives its own from n - 1 ranks);
//   AllReduce      2 * (n - 1) * B / n each way, rounded down (the ring
//                  algorithm: a reduce-scatter and an all-gather of B / n);
//   Barrier        nothing;
//   Exchange       the sum of its sends, and the sum of its receives
//                  (counted when FinishExchange succeeds).
// A one-rank communicator therefore counts nothing.
//
// Timeouts: an operation that does not complete within timeout() returns
// DeadlineExceeded. Its buffers may still be read or written by the engine
// until the communicator is destroyed (the peers may arrive late), and every
// later call on the communicator fails with FailedPrecondition: a timeout
// ends the communicator's useful life. The destructor waits up to timeout()
// for such abandoned operations.
//
// A Communicator is not thread-safe: one thread at a time calls it.

#ifndef DISTRIBUTED_COMMUNICATOR_H_
#define DISTRIBUTED_COMMUNICATOR_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "base/device.h"

namespace dilated {
namespace distributed {

// Where the buffers of one call live, and the CUDA stream (cudaStream_t,
// nullptr for the default stream) that orders device work; ignored for host
// buffers.
struct Buffers {
  Device device;
  void* stream = nullptr;
};

// Element types and operations of reductions.
enum class ElementType { kFloat32, kFloat64, kInt32, kInt64, kUInt8 };
enum class ReduceOp { kSum, kMax, kMin };

// Returns the size in bytes of one element of `type`.
size_t ElementSize(ElementType type);

// One point-to-point message of an exchange: send `bytes` from `data` to
// `peer`, or receive `bytes` from `peer` into `data`.
struct Transfer {
  enum class Kind { kSend, kReceive };
  Kind kind;
  int peer;
  void* data;
  size_t bytes;

  static Transfer Send(int peer, const void* data, size_t bytes) {
    return Transfer{Kind::kSend, peer, const_cast<void*>(data), bytes};
  }
  static Transfer Receive(int peer, void* data, size_t bytes) {
    return Transfer{Kind::kReceive, peer, data, bytes};
  }
};

class Communicator;

// An exchange started by StartExchange, finished by FinishExchange. Opaque;
// engines keep their state behind `state` (null when there is nothing to
// wait for). Move-only; a moved-from object is inactive.
class PendingExchange {
 public:
  PendingExchange() = default;
  PendingExchange(PendingExchange&& other) noexcept {
    *this = std::move(other);
  }
  PendingExchange& operator=(PendingExchange&& other) noexcept {
    state_ = std::move(other.state_);
    owner_ = other.owner_;
    bytes_sent_ = other.bytes_sent_;
    bytes_received_ = other.bytes_received_;
    other.owner_ = nullptr;
    return *this;
  }

  // Returns whether it holds an exchange not finished yet.
  bool active() const { return owner_ != nullptr; }

  struct State {
    virtual ~State() = default;
  };
  explicit PendingExchange(std::unique_ptr<State> state)
      : state_(std::move(state)) {}
  State* state() const { return state_.get(); }
  std::unique_ptr<State> release() { return std::move(state_); }

 private:
  friend class Communicator;

  std::unique_ptr<State> state_;
  // Set by Communicator::StartExchange: the communicator that must finish it
  // and the payload it counts on success.
  const Communicator* owner_ = nullptr;
  uint64_t bytes_sent_ = 0;
  uint64_t bytes_received_ = 0;
};

class Communicator {
 public:
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;
  virtual ~Communicator() = default;

  // Returns this process's rank in [0, size()) and the number of ranks.
  int rank() const { return rank_; }
  int size() const { return size_; }

  // Returns the engine's name: "mpi", "nccl" or "single".
  virtual std::string engine() const = 0;

  // Returns the time after which an operation that has not completed fails
  // with DeadlineExceeded.
  absl::Duration timeout() const { return timeout_; }

  // Gathers `bytes` bytes from every rank: rank r's `send` lands at
  // recv + r * bytes. `recv` holds size() * bytes bytes and must not overlap
  // `send`.
  absl::Status AllGather(const void* send, void* recv, size_t bytes,
                         const Buffers& buffers);

  // Reduces size() * count elements over the ranks and leaves block r
  // (count elements at recv) on rank r. `recv` must not overlap `send`.
  absl::Status ReduceScatter(const void* send, void* recv, int64_t count,
                             ElementType type, ReduceOp op,
                             const Buffers& buffers);

  // Reduces `count` elements over the ranks into `recv` on every rank
  // (`send` may equal `recv`; other overlaps are InvalidArgument).
  absl::Status AllReduce(const void* send, void* recv, int64_t count,
                         ElementType type, ReduceOp op, const Buffers& buffers);

  // Returns when every rank has called it (host synchronisation).
  absl::Status Barrier();

  // Runs the sends and receives of `transfers` as one group: none waits for
  // another, so a ring step (send to the next rank, receive from the
  // previous) cannot deadlock. Returns when they are done (host buffers) or
  // ordered on buffers.stream (device buffers). A peer equal to rank() is
  // InvalidArgument; zero-byte transfers are skipped. Several transfers
  // between the same two ranks match in the order they are listed.
  absl::Status Exchange(absl::Span<const Transfer> transfers,
                        const Buffers& buffers);

  // As Exchange, but returns at once so that the caller can compute while
  // the messages travel; FinishExchange completes it (host buffers) or
  // orders it before later work on buffers.stream (device buffers). The
  // buffers must stay untouched until then. Finishing an inactive exchange
  // or one started on another communicator is InvalidArgument.
  absl::StatusOr<PendingExchange> StartExchange(
      absl::Span<const Transfer> transfers, const Buffers& buffers);
  absl::Status FinishExchange(PendingExchange pending);

  // Payload bytes sent and received since construction or the last
  // ResetCounters (see the file comment).
  uint64_t bytes_sent() const { return bytes_sent_; }
  uint64_t bytes_received() const { return bytes_received_; }
  void ResetCounters() {
    bytes_sent_ = 0;
    bytes_received_ = 0;
  }

 protected:
  Communicator(int rank, int size, absl::Duration timeout)
      : rank_(rank), size_(size), timeout_(timeout) {}

 private:
  virtual absl::Status DoAllGather(const void* send, void* recv, size_t bytes,
                                   const Buffers& buffers) = 0;
  virtual absl::Status DoReduceScatter(const void* send, void* recv,
                                       int64_t count, ElementType type,
                                       ReduceOp op, const Buffers& buffers) = 0;
  virtual absl::Status DoAllReduce(const void* send, void* recv, int64_t count,
                                   ElementType type, ReduceOp op,
                                   const Buffers& buffers) = 0;
  virtual absl::Status DoBarrier() = 0;
  // `transfers` is checked and has no zero-byte entries.
  virtual absl::StatusOr<PendingExchange> DoStartExchange(
      absl::Span<const Transfer> transfers, const Buffers& buffers) = 0;
  virtual absl::Status DoFinishExchange(PendingExchange pending) = 0;

  int rank_;
  int size_;
  absl::Duration timeout_;
  uint64_t bytes_sent_ = 0;
  uint64_t bytes_received_ = 0;
};

// A communicator of one rank: collectives copy, an exchange is an error (no
// peers). What the sequence-parallel implementations use when the caller
// gives none.
std::unique_ptr<Communicator> CreateSingleProcessCommunicator();

}  // namespace distributed
}  // namespace dilated

#endif  // DISTRIBUTED_COMMUNICATOR_H_
