// The core of absorbed multi-head latent attention for one head. Keys and values are
// never materialised: every cached token is one row [c (rank floats) | k_rope (rope floats)],
// shared by all heads; the head's query arrives already projected into the latent space.
//   score(t, s) = (q_latent[t] . c[s] + q_rope[t] . k_rope[s]) * scale,   s <= first_pos + t
//   out[t]      = sum_s softmax(score)[s] * c[s]                            (rank floats)
#pragma once

#include <cstdint>

namespace dsv3 {

struct LatentQueries {
  const float* latent;  // [T] rows of `rank` floats, latent_stride apart
  int64_t latent_stride;
  const float* rope;    // [T] rows of `rope` floats, rope_stride apart
  int64_t rope_stride;
};

// Floats of scratch latent_attention_head needs for T queries that see up to `visible` rows.
int64_t latent_attention_scratch_floats(int64_t rank, int64_t rope, int64_t T, int64_t visible);

// cache: rows of rank + rope floats; query t sits at position first_pos + t and sees
// rows 0..first_pos+t. scratch: latent_attention_scratch_floats(rank, rope, T, first_pos + T)
// floats. out: [T][rank].
void latent_attention_head(const LatentQueries& q, int64_t T, int64_t first_pos, const float* cache, int64_t rank,
                           int64_t rope, float scale, float* scratch, float* out);

}  // namespace dsv3
