#include "distributed/communicator.h"

#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "factory/status_macros.h"

namespace dilated {
namespace distributed {
namespace {

absl::Status CheckPointer(absl::string_view op, absl::string_view name,
                          const void* pointer, uint64_t bytes) {
  if (pointer == nullptr && bytes > 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Communicator::", op, ": `", name, "` is null for ", bytes, " bytes"));
  }
  return absl::OkStatus();
}

absl::Status CheckBuffers(absl::string_view op, const Buffers& buffers) {
  if (buffers.device.type == DeviceType::kCuda && buffers.device.index < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("Communicator::", op, ": buffers.device index ",
                     buffers.device.index, " is negative"));
  }
  return absl::OkStatus();
}

absl::Status CheckElementType(absl::string_view op, ElementType type) {
  if (ElementSize(type) == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("Communicator::", op, ": `type` ", static_cast<int>(type),
                     " is not an ElementType"));
  }
  return absl::OkStatus();
}

absl::Status CheckReduceOp(absl::string_view op, ReduceOp reduce) {
  switch (reduce) {
    case ReduceOp::kSum:
    case ReduceOp::kMax:
    case ReduceOp::kMin:
      return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      absl::StrCat("Communicator::", op, ": `op` ", static_cast<int>(reduce),
                   " is not a ReduceOp"));
}

// Returns `count` elements of `type` times `blocks` in bytes, or
// InvalidArgument if it is negative or does not fit in 63 bits.
absl::StatusOr<uint64_t> CountBytes(absl::string_view op, int64_t count,
                                    ElementType type, int blocks) {
  if (count < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Communicator::", op, ": `count` ", count, " is negative"));
  }
  const uint64_t limit =
      static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  const uint64_t per_count = ElementSize(type) * static_cast<uint64_t>(blocks);
  if (count > 0 && static_cast<uint64_t>(count) > limit / per_count) {
    return absl::InvalidArgumentError(
        absl::StrCat("Communicator::", op, ": `count` ", count, " times ",
                     per_count, " bytes does not fit in 63 bits"));
  }
  return static_cast<uint64_t>(count) * per_count;
}

// Returns whether [a, a + a_bytes) and [b, b + b_bytes) share a byte.
bool Overlap(const void* a, uint64_t a_bytes, const void* b, uint64_t b_bytes) {
  if (a_bytes == 0 || b_bytes == 0) return false;
  const uintptr_t x = reinterpret_cast<uintptr_t>(a);
  const uintptr_t y = reinterpret_cast<uintptr_t>(b);
  return x < y + b_bytes && y < x + a_bytes;
}

absl::Status CheckNoOverlap(absl::string_view op, const void* send,
                            uint64_t send_bytes, const void* recv,
                            uint64_t recv_bytes) {
  if (Overlap(send, send_bytes, recv, recv_bytes)) {
    return absl::InvalidArgumentError(
        absl::StrCat("Communicator::", op, ": `send` (", send_bytes,
                     " bytes at ", absl::Hex(reinterpret_cast<uintptr_t>(send)),
                     ") overlaps `recv` (", recv_bytes, " bytes at ",
                     absl::Hex(reinterpret_cast<uintptr_t>(recv)), ")"));
  }
  return absl::OkStatus();
}

}  // namespace

size_t ElementSize(ElementType type) {
  switch (type) {
    case ElementType::kFloat32:
      return 4;
    case ElementType::kFloat64:
      return 8;
    case ElementType::kInt32:
      return 4;
    case ElementType::kInt64:
      return 8;
    case ElementType::kUInt8:
      return 1;
  }
  return 0;
}

absl::Status Communicator::AllGather(const void* send, void* recv, size_t bytes,
                                     const Buffers& buffers) {
  DA_RETURN_IF_ERROR(CheckBuffers("AllGather", buffers));
  if (bytes > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) /
                  static_cast<uint64_t>(size())) {
    return absl::InvalidArgumentError(
        absl::StrCat("Communicator::AllGather: `bytes` ", bytes, " times ",
                     size(), " ranks does not fit in 63 bits"));
  }
  const uint64_t total = static_cast<uint64_t>(bytes) * size();
  DA_RETURN_IF_ERROR(CheckPointer("AllGather", "send", send, bytes));
  DA_RETURN_IF_ERROR(CheckPointer("AllGather", "recv", recv, total));
  DA_RETURN_IF_ERROR(CheckNoOverlap("AllGather", send, bytes, recv, total));
  if (bytes == 0) return absl::OkStatus();
  DA_RETURN_IF_ERROR(DoAllGather(send, recv, bytes, buffers));
  const uint64_t moved = static_cast<uint64_t>(bytes) * (size() - 1);
  bytes_sent_ += moved;
  bytes_received_ += moved;
  return absl::OkStatus();
}

absl::Status Communicator::ReduceScatter(const void* send, void* recv,
                                         int64_t count, ElementType type,
                                         ReduceOp op, const Buffers& buffers) {
  DA_RETURN_IF_ERROR(CheckBuffers("ReduceScatter", buffers));
  DA_RETURN_IF_ERROR(CheckElementType("ReduceScatter", type));
  DA_RETURN_IF_ERROR(CheckReduceOp("ReduceScatter", op));
  DA_ASSIGN_OR_RETURN(const uint64_t total,
                      CountBytes("ReduceScatter", count, type, size()));
  const uint64_t block = total / size();
  DA_RETURN_IF_ERROR(CheckPointer("ReduceScatter", "send", send, total));
  DA_RETURN_IF_ERROR(CheckPointer("ReduceScatter", "recv", recv, block));
  DA_RETURN_IF_ERROR(CheckNoOverlap("ReduceScatter", send, total, recv, block));
  if (count == 0) return absl::OkStatus();
  DA_RETURN_IF_ERROR(DoReduceScatter(send, recv, count, type, op, buffers));
  const uint64_t moved = block * (size() - 1);
  bytes_sent_ += moved;
  bytes_received_ += moved;
  return absl::OkStatus();
}

absl::Status Communicator::AllReduce(const void* send, void* recv,
                                     int64_t count, ElementType type,
                                     ReduceOp op, const Buffers& buffers) {
  DA_RETURN_IF_ERROR(CheckBuffers("AllReduce", buffers));
  DA_RETURN_IF_ERROR(CheckElementType("AllReduce", type));
  DA_RETURN_IF_ERROR(CheckReduceOp("AllReduce", op));
  DA_ASSIGN_OR_RETURN(const uint64_t bytes,
                      CountBytes("AllReduce", count, type, 1));
  DA_RETURN_IF_ERROR(CheckPointer("AllReduce", "send", send, bytes));
  DA_RETURN_IF_ERROR(CheckPointer("AllReduce", "recv", recv, bytes));
  if (send != recv) {
    DA_RETURN_IF_ERROR(CheckNoOverlap("AllReduce", send, bytes, recv, bytes));
  }
  if (count == 0) return absl::OkStatus();
  DA_RETURN_IF_ERROR(DoAllReduce(send, recv, count, type, op, buffers));
  // The ring model: 2 (n - 1) steps of B / n each way. Dividing last keeps
  // the count exact when B is a multiple of n.
  const uint64_t moved = 2 * (size() - 1) * bytes / size();
  bytes_sent_ += moved;
  bytes_received_ += moved;
  return absl::OkStatus();
}

absl::Status Communicator::Barrier() { return DoBarrier(); }

absl::Status Communicator::Exchange(absl::Span<const Transfer> transfers,
                                    const Buffers& buffers) {
  DA_ASSIGN_OR_RETURN(PendingExchange pending,
                      StartExchange(transfers, buffers));
  return FinishExchange(std::move(pending));
}

absl::StatusOr<PendingExchange> Communicator::StartExchange(
    absl::Span<const Transfer> transfers, const Buffers& buffers) {
  DA_RETURN_IF_ERROR(CheckBuffers("StartExchange", buffers));
  std::vector<Transfer> nonempty;
  nonempty.reserve(transfers.size());
  uint64_t sent = 0;
  uint64_t received = 0;
  for (size_t i = 0; i < transfers.size(); ++i) {
    const Transfer& t = transfers[i];
    const std::string which = absl::StrCat("transfers[", i, "]");
    if (t.kind != Transfer::Kind::kSend && t.kind != Transfer::Kind::kReceive) {
      return absl::InvalidArgumentError(absl::StrCat(
          "Communicator::StartExchange: ", which, ".kind ",
          static_cast<int>(t.kind), " is neither send nor receive"));
    }
    if (t.peer < 0 || t.peer >= size() || t.peer == rank()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "Communicator::StartExchange: ", which, ".peer ", t.peer,
          t.peer == rank() ? " is this rank" : " is out of range", " (rank ",
          rank(), " of ", size(), ")",
          size() == 1 ? ": a communicator of one rank has no peers" : ""));
    }
    DA_RETURN_IF_ERROR(CheckPointer(
        "StartExchange", absl::StrCat(which, ".data"), t.data, t.bytes));
    if (t.bytes == 0) continue;
    (t.kind == Transfer::Kind::kSend ? sent : received) += t.bytes;
    nonempty.push_back(t);
  }
  PendingExchange pending;
  if (!nonempty.empty()) {
    DA_ASSIGN_OR_RETURN(pending, DoStartExchange(nonempty, buffers));
  }
  pending.owner_ = this;
  pending.bytes_sent_ = sent;
  pending.bytes_received_ = received;
  return pending;
}

absl::Status Communicator::FinishExchange(PendingExchange pending) {
  if (!pending.active()) {
    return absl::InvalidArgumentError(
        "Communicator::FinishExchange: `pending` is not active (finished, "
        "moved from or never started)");
  }
  if (pending.owner_ != this) {
    return absl::InvalidArgumentError(
        "Communicator::FinishExchange: `pending` was started on another "
        "communicator");
  }
  const uint64_t sent = pending.bytes_sent_;
  const uint64_t received = pending.bytes_received_;
  pending.owner_ = nullptr;
  if (pending.state() != nullptr) {
    DA_RETURN_IF_ERROR(DoFinishExchange(std::move(pending)));
  }
  bytes_sent_ += sent;
  bytes_received_ += received;
  return absl::OkStatus();
}

}  // namespace distributed
}  // namespace dilated
