// The all-to-all trip of expert parallelism: every rank sends rows (tokens' activations) to
// the ranks that own their experts and gets the results back in the same places.
//
//   plan(send_rows)      rows this rank sends to each rank; learns how many it receives
//   dispatch(send, recv) its rows out, grouped by destination; theirs in, grouped by source
//   combine(recv, send)  the reverse trip: results of the received rows back to their senders
//
// Rows are opaque bytes of a fixed width per call, so the same plan carries activations,
// gradients and expert ids. Without a communicator (one process) the trip is a copy.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "dist/communicator.h"

namespace dsv3 {

class RowExchange {
 public:
  explicit RowExchange(Communicator* comm) : comm_(comm) {}

  int ranks() const { return comm_ ? comm_->size() : 1; }
  int rank() const { return comm_ ? comm_->rank() : 0; }

  // send_rows[q]: rows this rank sends to rank q; exchanges the counts.
  void plan(std::span<const int64_t> send_rows, const char* what);
  int64_t sent_rows() const { return sent_total_; }
  int64_t received_rows() const { return received_total_; }
  std::span<const int64_t> received_from() const { return recv_rows_; }

  // `send` holds sent_rows() rows of row_bytes, grouped by destination rank in rank order;
  // `recv` receives received_rows() rows grouped by source rank.
  void dispatch(const void* send, void* recv, int64_t row_bytes, const char* what) const;
  // The reverse: received_rows() rows back to their senders, into sent_rows() rows.
  void combine(const void* recv, void* send, int64_t row_bytes, const char* what) const;

 private:
  void exchange(std::span<const int64_t> out_rows, const void* out, std::span<const int64_t> in_rows, void* in,
                int64_t row_bytes, const char* what) const;

  Communicator* comm_;
  std::vector<int64_t> send_rows_{0}, recv_rows_{0};
  int64_t sent_total_ = 0, received_total_ = 0;
};

}  // namespace dsv3
