// The core of absorbed multi-head latent attention for a group of heads. Keys and values are
// never materialised: every cached token is one row [c (rank floats) | k_rope (rope floats)],
// shared by all heads; each head's query arrives already projected into the latent space.
//   score(h, t, s) = (q_latent[h][t] . c[s] + q_rope[h][t] . k_rope[s]) * scale,   s <= first_pos + t
//   out[h][t]      = sum_s softmax(score(h, t))[s] * c[s]                          (rank floats)
// The group's heads meet each cache row together (one read of the cache for all of them,
// where a head at a time read it once per head).
#pragma once

#include <cstdint>

namespace dsv3 {

struct LatentQueries {
  const float* latent;  // head h, token t: rank floats at latent + h * latent_head_stride + t * latent_stride
  int64_t latent_stride, latent_head_stride;
  const float* rope;    // head h, token t: rope floats at rope + h * rope_head_stride + t * rope_stride
  int64_t rope_stride, rope_head_stride;
};

// Floats of scratch latent_attention needs for up to `heads` heads of T queries that see up
// to `visible` rows.
int64_t latent_attention_scratch_floats(int64_t rank, int64_t rope, int64_t heads, int64_t T, int64_t visible);

// cache: rows of rank + rope floats; query t sits at position first_pos + t and sees
// rows 0..first_pos+t. scratch: latent_attention_scratch_floats(rank, rope, heads, T,
// first_pos + T) floats. out: head h, token t at out + h * out_head_stride + t * rank.
// Each query's result is the same, bit for bit, whatever the number of heads or tokens that
// share the call.
void latent_attention(const LatentQueries& q, int64_t heads, int64_t T, int64_t first_pos, const float* cache,
                      int64_t rank, int64_t rope, float scale, float* scratch, float* out, int64_t out_head_stride);

}  // namespace dsv3
