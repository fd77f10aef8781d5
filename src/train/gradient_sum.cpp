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

void GradientSum::flush() {
  in_blocks(pool_, sequence_.size(), [&](size_t begin, size_t end) {
    add_and_clear(&sequence_[begin], &sum_[begin], end - begin);
  });
  in_blocks(pool_, mtp_embed_.size(), [&](size_t begin, size_t end) {
    add_and_clear(&mtp_embed_[begin], &sum_[embed_offset_ + begin], end - begin);
  });
}

void GradientSum::flush_range(float* begin, int64_t count) {
  const size_t offset = static_cast<size_t>(begin - sequence_.data());
  if (begin < sequence_.data() || offset + static_cast<size_t>(count) > sequence_.size())
    fail("flush_range outside the gradient buffer");
  add_and_clear(&sequence_[offset], &sum_[offset], static_cast<size_t>(count));
}

void GradientSum::all_reduce(Communicator& comm) { comm.allreduce_sum(sum_, "summing the gradients"); }

void GradientSum::take(std::span<float> gradient) {
  in_blocks(pool_, sum_.size(), [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) {
      gradient[i] = static_cast<float>(sum_[i]);
      sum_[i] = 0.0;
    }
  });
}

}  // namespace dsv3
