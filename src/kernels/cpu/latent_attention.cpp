#include "kernels/cpu/latent_attention.h"

#include <algorithm>
#include <cmath>

#include "kernels/cpu/matmul.h"

namespace dsv3 {

namespace {
constexpr int64_t kQueryBlock = 16;  // queries (heads x tokens) whose scores are computed in one product

int64_t tokens_per_block(int64_t heads, int64_t T) { return std::min(T, std::max<int64_t>(1, kQueryBlock / heads)); }
}  // namespace

int64_t latent_attention_scratch_floats(int64_t rank, int64_t rope, int64_t heads, int64_t T, int64_t visible) {
  // The largest block, tokens_per_block(h, T) * h queries, over groups of h <= heads (a pool's
  // groups may differ by a head, and 5 heads take blocks of 15 queries where 6 take 12).
  const int64_t block = std::min(std::max(kQueryBlock, heads), T * heads);
  return block * (rank + rope + visible + rank);
}

void latent_attention(const LatentQueries& q, int64_t heads, int64_t T, int64_t first_pos, const float* cache,
                      int64_t rank, int64_t rope, float scale, float* scratch, float* out, int64_t out_head_stride) {
  // A block of tokens at a time, with all the group's heads: the block's queries (token-major)
  // scored against every row its last token sees in one matrix product, a softmax per query
  // (rows it must not see get probability 0), then their outputs as one product of the
  // probabilities with the cache rows' latent part (the rope columns only score). The
  // products sum each score and each output in an order that does not depend on the block,
  // so a query's result does not depend on how many others share the pass.
  const int64_t row = rank + rope, tokens = tokens_per_block(heads, T), block = tokens * heads;
  float* queries = scratch;                             // [block][latent | rope]
  float* scores = queries + block * row;                // [block][visible]
  float* outputs = scores + block * (first_pos + T);    // [block][rank]
  for (int64_t t0 = 0; t0 < T; t0 += tokens) {
    const int64_t nt = std::min(tokens, T - t0), n = nt * heads, visible = first_pos + t0 + nt;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t t = t0 + i / heads, h = i % heads;
      std::copy_n(q.latent + h * q.latent_head_stride + t * q.latent_stride, rank, queries + i * row);
      std::copy_n(q.rope + h * q.rope_head_stride + t * q.rope_stride, rope, queries + i * row + rank);
    }
    const Matrix rows{DType::F32, visible, row, cache, nullptr, 0};
    matmul_rows(rows, queries, row, n, scores, visible, 0, visible);
    for (int64_t i = 0; i < n; ++i) {
      float* p = scores + i * visible;
      const int64_t seen = first_pos + t0 + i / heads + 1;
      float max_score = -INFINITY;
      for (int64_t s = 0; s < seen; ++s) max_score = std::max(max_score, p[s] *= scale);
      float sum = 0.0f;
      for (int64_t s = 0; s < seen; ++s) sum += p[s] = std::exp(p[s] - max_score);
      for (int64_t s = 0; s < seen; ++s) p[s] /= sum;
      std::fill(p + seen, p + visible, 0.0f);
    }
    matmul_transposed(rows, scores, visible, n, outputs, rank);
    for (int64_t i = 0; i < n; ++i)
      std::copy_n(outputs + i * rank, rank, out + (i % heads) * out_head_stride + (t0 + i / heads) * rank);
  }
}

}  // namespace dsv3
