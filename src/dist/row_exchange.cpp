#include "dist/row_exchange.h"

#include <cstring>
#include <limits>
#include <numeric>

#include "base/error.h"

namespace dsv3 {

void RowExchange::plan(std::span<const int64_t> send_rows, const char* what) {
  const size_t n = static_cast<size_t>(ranks());
  if (send_rows.size() != n) fail(what, ": ", send_rows.size(), " row counts for ", n, " ranks");
  send_rows_.assign(send_rows.begin(), send_rows.end());
  recv_rows_.assign(n, 0);
  if (comm_) {
    // Each rank's count for q goes to q: an exchange of one 8-byte row per pair.
    const std::vector<int> one(n, sizeof(int64_t));
    std::vector<int> offsets(n);
    for (size_t q = 0; q < n; ++q) offsets[q] = static_cast<int>(q * sizeof(int64_t));
    comm_->alltoallv(send_rows_.data(), one, offsets, recv_rows_.data(), one, offsets, what);
  } else {
    recv_rows_ = send_rows_;
  }
  sent_total_ = std::accumulate(send_rows_.begin(), send_rows_.end(), int64_t{0});
  received_total_ = std::accumulate(recv_rows_.begin(), recv_rows_.end(), int64_t{0});
}

void RowExchange::dispatch(const void* send, void* recv, int64_t row_bytes, const char* what) const {
  exchange(send_rows_, send, recv_rows_, recv, row_bytes, what);
}

void RowExchange::combine(const void* recv, void* send, int64_t row_bytes, const char* what) const {
  exchange(recv_rows_, recv, send_rows_, send, row_bytes, what);
}

void RowExchange::exchange(std::span<const int64_t> out_rows, const void* out, std::span<const int64_t> in_rows,
                           void* in, int64_t row_bytes, const char* what) const {
  if (!comm_) {
    std::memcpy(in, out, static_cast<size_t>(out_rows[0] * row_bytes));
    return;
  }
  const size_t n = out_rows.size();
  std::vector<int> out_bytes(n), out_offsets(n), in_bytes(n), in_offsets(n);
  int64_t out_at = 0, in_at = 0;
  for (size_t q = 0; q < n; ++q) {
    const int64_t ob = out_rows[q] * row_bytes, ib = in_rows[q] * row_bytes;
    if (out_at + ob > std::numeric_limits<int>::max() || in_at + ib > std::numeric_limits<int>::max())
      fail(what, ": more than 2 GiB in one exchange");
    out_bytes[q] = static_cast<int>(ob);
    out_offsets[q] = static_cast<int>(out_at);
    in_bytes[q] = static_cast<int>(ib);
    in_offsets[q] = static_cast<int>(in_at);
    out_at += ob;
    in_at += ib;
  }
  comm_->alltoallv(out, out_bytes, out_offsets, in, in_bytes, in_offsets, what);
}

}  // namespace dsv3
