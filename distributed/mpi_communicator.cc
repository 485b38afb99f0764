#include "distributed/mpi_communicator.h"

#include <mpi.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "distributed/communicator.h"
#include "distributed/internal/device_copy.h"
#include "distributed/internal/mpi_runtime.h"
#include "distributed/internal/pinned_staging.h"
#include "factory/status_macros.h"

namespace dilated {
namespace distributed {
namespace {

using internal::PinnedStaging;

// Every exchange message carries this tag; messages between two ranks match
// in posting order (MPI's non-overtaking rule), which is the order of the
// transfers and of the exchanges.
constexpr int kExchangeTag = 1;

// The largest count of one MPI message of this engine: MPI counts are int,
// and a power of two keeps split messages aligned to every element size.
constexpr int64_t kMaxCount = int64_t{1} << 30;

MPI_Datatype MpiType(ElementType type) {
  switch (type) {
    case ElementType::kFloat32:
      return MPI_FLOAT;
    case ElementType::kFloat64:
      return MPI_DOUBLE;
    case ElementType::kInt32:
      return MPI_INT32_T;
    case ElementType::kInt64:
      return MPI_INT64_T;
    case ElementType::kUInt8:
      return MPI_UINT8_T;
  }
  return MPI_DATATYPE_NULL;
}

MPI_Op MpiOp(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
      return MPI_SUM;
    case ReduceOp::kMax:
      return MPI_MAX;
    case ReduceOp::kMin:
      return MPI_MIN;
  }
  return MPI_OP_NULL;
}

bool OnDevice(const Buffers& buffers) {
  return buffers.device.type == DeviceType::kCuda;
}

// Copies device data into staging memory and waits for the copy.
absl::Status StageIn(char* host, const void* device, size_t bytes,
                     const Buffers& buffers) {
  DA_RETURN_IF_ERROR(
      internal::CopyAsync(host, device, bytes, buffers.device, buffers.stream));
  return internal::SynchronizeStream(buffers.device, buffers.stream);
}

// Copies staging memory back to the device and waits, so that the staging
// buffer can be reused at once.
absl::Status StageOut(void* device, const char* host, size_t bytes,
                      const Buffers& buffers) {
  DA_RETURN_IF_ERROR(
      internal::CopyAsync(device, host, bytes, buffers.device, buffers.stream));
  return internal::SynchronizeStream(buffers.device, buffers.stream);
}

// Posts an all-gather of `bytes` bytes per rank, in several messages when
// `bytes` exceeds kMaxCount: chunk [offset, offset + n) of every rank lands
// at recv + r * bytes + offset, described by a datatype of n bytes whose
// extent is `bytes`.
absl::Status PostAllGather(const char* send, char* recv, size_t bytes,
                           MPI_Comm comm, std::vector<MPI_Request>& requests) {
  if (bytes <= static_cast<size_t>(kMaxCount)) {
    MPI_Request request;
    DA_RETURN_IF_ERROR(internal::MpiStatus(
        MPI_Iallgather(send, static_cast<int>(bytes), MPI_BYTE, recv,
                       static_cast<int>(bytes), MPI_BYTE, comm, &request),
        "MPI_Iallgather"));
    requests.push_back(request);
    return absl::OkStatus();
  }
  for (size_t offset = 0; offset < bytes; offset += kMaxCount) {
    const int chunk =
        static_cast<int>(std::min<size_t>(kMaxCount, bytes - offset));
    MPI_Datatype block;
    DA_RETURN_IF_ERROR(internal::MpiStatus(
        MPI_Type_contiguous(chunk, MPI_BYTE, &block), "MPI_Type_contiguous"));
    MPI_Datatype strided;
    const int resized = MPI_Type_create_resized(
        block, 0, static_cast<MPI_Aint>(bytes), &strided);
    MPI_Type_free(&block);
    DA_RETURN_IF_ERROR(internal::MpiStatus(resized, "MPI_Type_create_resized"));
    int error = MPI_Type_commit(&strided);
    MPI_Request request;
    if (error == MPI_SUCCESS) {
      error = MPI_Iallgather(send + offset, chunk, MPI_BYTE, recv + offset, 1,
                             strided, comm, &request);
    }
    // A datatype freed while an operation uses it lives until that ends.
    MPI_Type_free(&strided);
    DA_RETURN_IF_ERROR(internal::MpiStatus(error, "MPI_Iallgather"));
    requests.push_back(request);
  }
  return absl::OkStatus();
}

// Posts an all-reduce in messages of at most kMaxCount elements (an
// element-wise operation splits anywhere). In place when send == recv.
absl::Status PostAllReduce(const char* send, char* recv, int64_t count,
                           ElementType type, ReduceOp op, MPI_Comm comm,
                           std::vector<MPI_Request>& requests) {
  const size_t element = ElementSize(type);
  for (int64_t first = 0; first < count; first += kMaxCount) {
    const int n = static_cast<int>(std::min(kMaxCount, count - first));
    const size_t offset = static_cast<size_t>(first) * element;
    MPI_Request request;
    DA_RETURN_IF_ERROR(internal::MpiStatus(
        MPI_Iallreduce(send == recv ? MPI_IN_PLACE : send + offset,
                       recv + offset, n, MpiType(type), MpiOp(op), comm,
                       &request),
        "MPI_Iallreduce"));
    requests.push_back(request);
  }
  return absl::OkStatus();
}

class MpiCommunicator;

// An exchange in flight: its requests, the staging memory of device buffers
// and the copies back to the device that finishing it makes.
struct MpiExchange : PendingExchange::State {
  struct CopyBack {
    void* device;
    const char* host;
    size_t bytes;
  };

  ~MpiExchange() override;

  MpiCommunicator* comm = nullptr;
  Buffers buffers;
  std::vector<MPI_Request> requests;
  PinnedStaging::Lease lease;
  std::vector<CopyBack> copies;
};

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator(MPI_Comm comm, int rank, int size, absl::Duration timeout)
      : Communicator(rank, size, timeout), comm_(comm) {}

  // Waits up to timeout() for operations abandoned by a timeout or a
  // dropped PendingExchange, then frees the MPI communicator. Staging memory
  // that unfinished operations may still write is never freed.
  ~MpiCommunicator() override {
    if (internal::MpiFinalized()) return;
    const absl::Time deadline = absl::Now() + timeout();
    for (Abandoned& abandoned : abandoned_) {
      const absl::StatusOr<bool> done =
          internal::TestAllUntil(abandoned.requests, deadline);
      if (!done.ok() || !*done) abandoned.lease.Abandon();
    }
    MPI_Comm_free(&comm_);
  }

  std::string engine() const override { return "mpi"; }

  // Keeps requests that nobody will wait for, and the staging memory they
  // may write, until destruction.
  void Abandon(std::vector<MPI_Request> requests, PinnedStaging::Lease lease) {
    abandoned_.push_back(Abandoned{std::move(requests), std::move(lease)});
  }

 private:
  struct Abandoned {
    std::vector<MPI_Request> requests;
    PinnedStaging::Lease lease;
  };

  absl::Status Usable() const { return broken_; }

  // Marks the communicator unusable after `op` failed with `cause`, keeping
  // its requests and staging memory, and returns `cause`.
  absl::Status Break(absl::string_view op, std::vector<MPI_Request>& requests,
                     PinnedStaging::Lease& lease, absl::Status cause) {
    Abandon(std::move(requests), std::move(lease));
    requests.clear();
    broken_ = absl::FailedPreconditionError(absl::StrCat(
        "MPI communicator (rank ", rank(), " of ", size(),
        ") is unusable: an earlier ", op, " failed: ", cause.message()));
    return cause;
  }

  // Waits for `requests` with the timeout; on failure breaks the
  // communicator (see Break).
  absl::Status Wait(absl::string_view op, std::vector<MPI_Request>& requests,
                    PinnedStaging::Lease& lease) {
    const absl::StatusOr<bool> done =
        internal::TestAllUntil(requests, absl::Now() + timeout());
    if (!done.ok()) return Break(op, requests, lease, done.status());
    if (*done) return absl::OkStatus();
    return Break(
        op, requests, lease,
        absl::DeadlineExceededError(absl::StrCat(
            "MPI ", op, " did not complete within ",
            absl::FormatDuration(timeout()), " on rank ", rank(), " of ",
            size(), ": a rank did not make the matching call")));
  }

  // Posts an operation with `post` and waits for it.
  absl::Status Run(
      absl::string_view op, PinnedStaging::Lease& lease,
      const std::function<absl::Status(std::vector<MPI_Request>&)>& post) {
    std::vector<MPI_Request> requests;
    const absl::Status posted = post(requests);
    if (!posted.ok()) return Break(op, requests, lease, posted);
    return Wait(op, requests, lease);
  }

  absl::Status DoAllGather(const void* send, void* recv, size_t bytes,
                           const Buffers& buffers) override {
    DA_RETURN_IF_ERROR(Usable());
    const size_t total = bytes * size();
    const char* from = static_cast<const char*>(send);
    char* to = static_cast<char*>(recv);
    PinnedStaging::Lease lease;
    if (OnDevice(buffers)) {
      DA_ASSIGN_OR_RETURN(lease, staging_.Acquire(bytes + total));
      DA_RETURN_IF_ERROR(StageIn(lease.data(), send, bytes, buffers));
      from = lease.data();
      to = lease.data() + bytes;
    }
    DA_RETURN_IF_ERROR(
        Run("all-gather", lease, [&](std::vector<MPI_Request>& requests) {
          return PostAllGather(from, to, bytes, comm_, requests);
        }));
    if (OnDevice(buffers)) return StageOut(recv, to, total, buffers);
    return absl::OkStatus();
  }

  absl::Status DoReduceScatter(const void* send, void* recv, int64_t count,
                               ElementType type, ReduceOp op,
                               const Buffers& buffers) override {
    DA_RETURN_IF_ERROR(Usable());
    if (count > std::numeric_limits<int>::max()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "MPI ReduceScatter: `count` ", count, " exceeds the ",
          std::numeric_limits<int>::max(), " elements of one MPI block"));
    }
    const size_t block = static_cast<size_t>(count) * ElementSize(type);
    const size_t total = block * size();
    const char* from = static_cast<const char*>(send);
    char* to = static_cast<char*>(recv);
    PinnedStaging::Lease lease;
    if (OnDevice(buffers)) {
      DA_ASSIGN_OR_RETURN(lease, staging_.Acquire(total + block));
      DA_RETURN_IF_ERROR(StageIn(lease.data(), send, total, buffers));
      from = lease.data();
      to = lease.data() + total;
    }
    DA_RETURN_IF_ERROR(
        Run("reduce-scatter", lease, [&](std::vector<MPI_Request>& requests) {
          MPI_Request request;
          DA_RETURN_IF_ERROR(internal::MpiStatus(
              MPI_Ireduce_scatter_block(from, to, static_cast<int>(count),
                                        MpiType(type), MpiOp(op), comm_,
                                        &request),
              "MPI_Ireduce_scatter_block"));
          requests.push_back(request);
          return absl::OkStatus();
        }));
    if (OnDevice(buffers)) return StageOut(recv, to, block, buffers);
    return absl::OkStatus();
  }

  absl::Status DoAllReduce(const void* send, void* recv, int64_t count,
                           ElementType type, ReduceOp op,
                           const Buffers& buffers) override {
    DA_RETURN_IF_ERROR(Usable());
    const size_t bytes = static_cast<size_t>(count) * ElementSize(type);
    const char* from = static_cast<const char*>(send);
    char* to = static_cast<char*>(recv);
    PinnedStaging::Lease lease;
    if (OnDevice(buffers)) {
      // In place in the staging buffer.
      DA_ASSIGN_OR_RETURN(lease, staging_.Acquire(bytes));
      DA_RETURN_IF_ERROR(StageIn(lease.data(), send, bytes, buffers));
      from = lease.data();
      to = lease.data();
    }
    DA_RETURN_IF_ERROR(
        Run("all-reduce", lease, [&](std::vector<MPI_Request>& requests) {
          return PostAllReduce(from, to, count, type, op, comm_, requests);
        }));
    if (OnDevice(buffers)) return StageOut(recv, to, bytes, buffers);
    return absl::OkStatus();
  }

  absl::Status DoBarrier() override {
    DA_RETURN_IF_ERROR(Usable());
    PinnedStaging::Lease none;
    return Run("barrier", none, [&](std::vector<MPI_Request>& requests) {
      MPI_Request request;
      DA_RETURN_IF_ERROR(
          internal::MpiStatus(MPI_Ibarrier(comm_, &request), "MPI_Ibarrier"));
      requests.push_back(request);
      return absl::OkStatus();
    });
  }

  absl::StatusOr<PendingExchange> DoStartExchange(
      absl::Span<const Transfer> transfers, const Buffers& buffers) override {
    DA_RETURN_IF_ERROR(Usable());
    auto state = std::make_unique<MpiExchange>();
    state->comm = this;
    state->buffers = buffers;
    // Where each transfer's bytes live for MPI: the caller's host buffer, or
    // its slice of one staging buffer.
    std::vector<char*> places(transfers.size());
    if (OnDevice(buffers)) {
      size_t total = 0;
      for (const Transfer& t : transfers) total += t.bytes;
      DA_ASSIGN_OR_RETURN(state->lease, staging_.Acquire(total));
      size_t offset = 0;
      for (size_t i = 0; i < transfers.size(); ++i) {
        places[i] = state->lease.data() + offset;
        offset += transfers[i].bytes;
        if (transfers[i].kind == Transfer::Kind::kSend) {
          DA_RETURN_IF_ERROR(internal::CopyAsync(
              places[i], transfers[i].data, transfers[i].bytes, buffers.device,
              buffers.stream));
        } else {
          state->copies.push_back(MpiExchange::CopyBack{
              transfers[i].data, places[i], transfers[i].bytes});
        }
      }
      DA_RETURN_IF_ERROR(
          internal::SynchronizeStream(buffers.device, buffers.stream));
    } else {
      for (size_t i = 0; i < transfers.size(); ++i) {
        places[i] = static_cast<char*>(transfers[i].data);
      }
    }
    for (size_t i = 0; i < transfers.size(); ++i) {
      const Transfer& t = transfers[i];
      // Messages of at most kMaxCount bytes; both sides split alike.
      for (size_t offset = 0; offset < t.bytes; offset += kMaxCount) {
        const int n =
            static_cast<int>(std::min<size_t>(kMaxCount, t.bytes - offset));
        MPI_Request request;
        const int error =
            t.kind == Transfer::Kind::kSend
                ? MPI_Isend(places[i] + offset, n, MPI_BYTE, t.peer,
                            kExchangeTag, comm_, &request)
                : MPI_Irecv(places[i] + offset, n, MPI_BYTE, t.peer,
                            kExchangeTag, comm_, &request);
        const absl::Status posted = internal::MpiStatus(
            error, t.kind == Transfer::Kind::kSend ? "MPI_Isend" : "MPI_Irecv");
        if (!posted.ok()) {
          return Break("exchange", state->requests, state->lease, posted);
        }
        state->requests.push_back(request);
      }
    }
    return PendingExchange(std::move(state));
  }

  absl::Status DoFinishExchange(PendingExchange pending) override {
    auto* state = static_cast<MpiExchange*>(pending.state());
    DA_RETURN_IF_ERROR(Usable());
    DA_RETURN_IF_ERROR(Wait("exchange", state->requests, state->lease));
    if (!OnDevice(state->buffers)) return absl::OkStatus();
    const Buffers& buffers = state->buffers;
    for (const MpiExchange::CopyBack& copy : state->copies) {
      DA_RETURN_IF_ERROR(internal::CopyAsync(copy.device, copy.host, copy.bytes,
                                             buffers.device, buffers.stream));
    }
    // The staging buffer goes back to the cache with `pending`.
    return internal::SynchronizeStream(buffers.device, buffers.stream);
  }

  MPI_Comm comm_;
  absl::Status broken_;
  // Before abandoned_, so that abandoned leases return to it before it goes.
  PinnedStaging staging_;
  std::vector<Abandoned> abandoned_;
};

MpiExchange::~MpiExchange() {
  const bool unfinished =
      std::any_of(requests.begin(), requests.end(),
                  [](MPI_Request r) { return r != MPI_REQUEST_NULL; });
  if (unfinished) comm->Abandon(std::move(requests), std::move(lease));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Communicator>> CreateMpiCommunicator(
    const MpiOptions& options) {
  if (options.timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "MpiOptions.timeout ", absl::FormatDuration(options.timeout),
        " is not positive"));
  }
  DA_RETURN_IF_ERROR(internal::EnsureMpiInitialized());
  // Duplicated without blocking, so that a rank that never comes is a
  // timeout rather than a hang.
  MPI_Comm comm;
  MPI_Request request;
  DA_RETURN_IF_ERROR(internal::MpiStatus(
      MPI_Comm_idup(MPI_COMM_WORLD, &comm, &request), "MPI_Comm_idup"));
  std::vector<MPI_Request> requests = {request};
  DA_ASSIGN_OR_RETURN(
      const bool done,
      internal::TestAllUntil(requests, absl::Now() + options.timeout));
  if (!done) {
    return absl::DeadlineExceededError(absl::StrCat(
        "MPI communicator creation (MPI_Comm_idup of MPI_COMM_WORLD) did not "
        "complete within ",
        absl::FormatDuration(options.timeout),
        ": a rank did not call CreateMpiCommunicator"));
  }
  DA_RETURN_IF_ERROR(
      internal::MpiStatus(MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN),
                          "MPI_Comm_set_errhandler"));
  int rank = 0;
  int size = 0;
  DA_RETURN_IF_ERROR(
      internal::MpiStatus(MPI_Comm_rank(comm, &rank), "MPI_Comm_rank"));
  DA_RETURN_IF_ERROR(
      internal::MpiStatus(MPI_Comm_size(comm, &size), "MPI_Comm_size"));
  return std::unique_ptr<Communicator>(
      new MpiCommunicator(comm, rank, size, options.timeout));
}

}  // namespace distributed
}  // namespace dilated
