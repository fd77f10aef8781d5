#include "kernels/cpu/latent_attention.h"

#include <algorithm>
#include <cmath>

#include "kernels/cpu/matmul.h"

namespace dsv3 {

namespace {
constexpr int64_t kQueryBlock = 16;  // queries whose scores are computed in one product
}  // namespace

int64_t latent_attention_scratch_floats(int64_t rank, int64_t rope, int64_t T, int64_t visible) {
  return std::min(kQueryBlock, T) * (rank + rope + visible);
}

void latent_attention_head(const LatentQueries& q, int64_t T, int64_t first_pos, const float* cache, int64_t rank,
                           int64_t rope, float scale, float* scratch, float* out) {
  // A block of queries at a time: their scores against every row the block's last query sees
  // in one matrix product, a softmax per query (rows it must not see get probability 0), then
  // their outputs as one product of the probabilities with the cache rows' latent part (the
  // rope columns only score). The products sum
  // each score and each output in an order that does not depend on the block, so a query's
  // result does not depend on how many others share the pass.
  const int64_t row = rank + rope, block = std::min(kQueryBlock, T);
  float* queries = scratch;                           // [block][latent | rope]
  float* scores = queries + block * row;              // [block][visible]
  for (int64_t t0 = 0; t0 < T; t0 += block) {
    const int64_t n = std::min(block, T - t0), visible = first_pos + t0 + n;
    for (int64_t i = 0; i < n; ++i) {
      std::copy_n(q.latent + (t0 + i) * q.latent_stride, rank, queries + i * row);
      std::copy_n(q.rope + (t0 + i) * q.rope_stride, rope, queries + i * row + rank);
    }
    const Matrix rows{DType::F32, visible, row, cache, nullptr, 0};
    matmul_rows(rows, queries, row, n, scores, visible, 0, visible);
    for (int64_t i = 0; i < n; ++i) {
      float* p = scores + i * visible;
      const int64_t seen = first_pos + t0 + i + 1;
      float max_score = -INFINITY;
      for (int64_t s = 0; s < seen; ++s) max_score = std::max(max_score, p[s] *= scale);
      float sum = 0.0f;
      for (int64_t s = 0; s < seen; ++s) sum += p[s] = std::exp(p[s] - max_score);
      for (int64_t s = 0; s < seen; ++s) p[s] /= sum;
      std::fill(p + seen, p + visible, 0.0f);
    }
    matmul_transposed(rows, scores, visible, n, out + t0 * rank, rank);
  }
}

}  // namespace dsv3
