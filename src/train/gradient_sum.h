// The step's gradient as a sum that does not depend on how the batch was split.
//
// Each sequence's gradient (or a pipeline stage's share of it) is computed from zero in FP32
// into sequence(), then flush() adds it into an FP64 sum and zeroes it again. Summing FP32
// values in FP64 is exact up to ~2^-29 of the result, so the order of the sequences — one
// process, data-parallel ranks, pipeline stages, DualPipe's two halves — almost never changes
// the FP32 gradient taken at the end: parallel runs follow the single-process run step for step
// instead of drifting apart by rounding until an expert choice flips. Costs: one FP64 buffer
// beside the parameters and a pass over the gradient per flush.
//
// The MTP module shares the main model's embedding, but its gradient arises on the last
// pipeline stage and the main one on the first: it is kept apart and added at the flush, so
// both orders give the same sum.
#pragma once

#include <span>
#include <utility>
#include <vector>

#include "base/thread_pool.h"
#include "dist/communicator.h"
#include "train/parameters.h"

namespace dsv3 {

class GradientSum {
 public:
  GradientSum(const ParameterLayout<float>& layout, ThreadPool& pool);

  // Views of the FP32 buffer one sequence's backward adds into (zero between flushes).
  TrainWeights<float>& sequence() { return views_; }
  void flush();
  // Adds and zeroes only `count` values at `begin` (inside sequence()'s buffer).
  void flush_range(float* begin, int64_t count);
  // Summing over the ranks (FP64), overlapped with the backward where it can be:
  // reduce_early() takes a range whose gradient is final for this step on this rank (a decoder
  // layer, once the rank's last backward has passed it), adds it into the sum and starts summing
  // it over the ranks; reduce() adds everything else sequence() holds, sums that, and waits for
  // the early ranges. All ranks call both in the same order. One rank: just the adds.
  void reduce_early(size_t begin, size_t end, Communicator& comm);
  void reduce(Communicator& comm);
  // The FP32 gradient, rounded once from the sum; the sum starts again from zero.
  void take(std::span<float> gradient);

 private:
  void add_range(size_t begin, size_t end);  // sum += sequence, sequence = 0 over [begin, end)
  void add_mtp_embed_share();                // the MTP module's embedding gradient into the embedding's sum

  ThreadPool& pool_;
  std::vector<float> sequence_, mtp_embed_;
  std::vector<double> sum_;
  size_t embed_offset_ = 0;
  std::vector<std::pair<size_t, size_t>> early_;  // ranges being summed since reduce_early()
  TrainWeights<float> views_;
};

}  // namespace dsv3
