#include "train/gradient_sum.h"

#include <algorithm>

#include "base/error.h"

namespace dsv3 {

namespace {

// Splits [0, n) into blocks for the pool: the passes are bound by memory bandwidth.
template <typename Fn>
void in_blocks(ThreadPool& pool, size_t n, Fn fn) {
  constexpr size_t kBlock = size_t{1} << 16;
  pool.parallel_for((n + kBlock - 1) / kBlock, [&](size_t b) { fn(b * kBlock, std::min(n, (b + 1) * kBlock)); });
}

// sum[i] += part[i]; part[i] = 0 for i < n.
void add_and_clear(float* part, double* sum, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    sum[i] += part[i];
    part[i] = 0.0f;
  }
}

}  // namespace

GradientSum::GradientSum(const ParameterLayout<float>& layout, ThreadPool& pool)
    : pool_(pool), sequence_(layout.size, 0.0f), sum_(layout.size, 0.0) {
  views_ = layout.views(sequence_.data());
  if (views_.mtp && !views_.mtp->embed.empty() && views_.mtp->embed.data == views_.embed.data) {
    embed_offset_ = static_cast<size_t>(views_.embed.data - sequence_.data());
    mtp_embed_.assign(static_cast<size_t>(views_.embed.rows * views_.embed.cols), 0.0f);
    views_.mtp->embed.data = mtp_embed_.data();
  }
}

void GradientSum::add_range(size_t begin, size_t end) {
  in_blocks(pool_, end - begin,
            [&](size_t b, size_t e) { add_and_clear(&sequence_[begin + b], &sum_[begin + b], e - b); });
}

void GradientSum::add_mtp_embed_share() {
  in_blocks(pool_, mtp_embed_.size(), [&](size_t begin, size_t end) {
    add_and_clear(&mtp_embed_[begin], &sum_[embed_offset_ + begin], end - begin);
  });
}

void GradientSum::flush() {
  add_range(0, sequence_.size());
  add_mtp_embed_share();
}

void GradientSum::flush_range(float* begin, int64_t count) {
  const size_t offset = static_cast<size_t>(begin - sequence_.data());
  if (begin < sequence_.data() || offset + static_cast<size_t>(count) > sequence_.size())
    fail("flush_range outside the gradient buffer");
  add_and_clear(&sequence_[offset], &sum_[offset], static_cast<size_t>(count));
}

void GradientSum::reduce_early(size_t begin, size_t end, Communicator& comm) {
  if (begin > end || end > sum_.size()) fail("reduce_early outside the gradient buffer");
  add_range(begin, end);
  early_.emplace_back(begin, end);
  comm.start_allreduce_sum(std::span<double>(sum_).subspan(begin, end - begin), "summing the gradients");
  comm.progress("summing the gradients");
}

void GradientSum::reduce(Communicator& comm) {
  // The MTP module's embedding share first: its range must not be one already on its way.
  std::sort(early_.begin(), early_.end());
  for (const auto& [begin, end] : early_)
    if (!mtp_embed_.empty() && begin < embed_offset_ + mtp_embed_.size() && embed_offset_ < end)
      fail("the embedding gradient was summed before the MTP module's share was added");
  add_mtp_embed_share();
  // Then the gaps between the early ranges.
  size_t next = 0;
  early_.emplace_back(sum_.size(), sum_.size());
  for (const auto& [begin, end] : early_) {
    if (begin > next) {
      add_range(next, begin);
      comm.start_allreduce_sum(std::span<double>(sum_).subspan(next, begin - next), "summing the gradients");
    }
    next = std::max(next, end);
  }
  early_.clear();
  comm.wait_reductions("summing the gradients");
}

void GradientSum::take(std::span<float> gradient) {
  in_blocks(pool_, sum_.size(), [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) {
      gradient[i] = static_cast<float>(sum_[i]);
      sum_[i] = 0.0;
    }
  });
}

}  // namespace dsv3
