#include "kernels/cpu/latent_attention.h"

#include <algorithm>
#include <cmath>

#include "kernels/cpu/vec.h"

namespace dsv3 {

void latent_attention_head(const LatentQueries& q, int64_t T, int64_t first_pos, const float* cache, int64_t rank,
                           int64_t rope, float scale, float* scores, float* out) {
  const int64_t row = rank + rope;
  for (int64_t t = 0; t < T; ++t) {
    const float* ql = q.latent + t * q.latent_stride;
    const float* qr = q.rope + t * q.rope_stride;
    const int64_t visible = first_pos + t + 1;
    float max_score = -INFINITY;
    for (int64_t s = 0; s < visible; ++s) {
      const float* c = cache + s * row;
      scores[s] = (simd::dot(ql, c, rank) + simd::dot(qr, c + rank, rope)) * scale;
      max_score = std::max(max_score, scores[s]);
    }
    float sum = 0.0f;
    for (int64_t s = 0; s < visible; ++s) {
      scores[s] = std::exp(scores[s] - max_score);
      sum += scores[s];
    }
    float* o = out + t * rank;
    std::fill(o, o + rank, 0.0f);
    for (int64_t s = 0; s < visible; ++s) {
      const float p = scores[s] / sum;
      const float* c = cache + s * row;
      simd::axpy(p, c, o, rank);
    }
  }
}

}  // namespace dsv3
