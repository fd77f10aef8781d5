// Multi-head latent attention, absorbed form (architecture.md, "Multi-head latent attention").
#include <algorithm>

#include "kernels/cpu/latent_attention.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/rmsnorm.h"
#include "kernels/cpu/rope.h"
#include "model/model.h"

namespace dsv3 {

void Model::attention(const AttentionWeights& w, const float* xn, int64_t T, std::span<const SequenceSlice> slices,
                      int64_t cache_layer, float* out) {
  const ModelConfig& c = config_;
  const int64_t heads = c.num_attention_heads, nope = c.qk_nope_head_dim, rope = c.qk_rope_head_dim;
  const int64_t rank = c.kv_lora_rank, v_dim = c.v_head_dim, qk = c.qk_head_dim();
  const int64_t row = rank + rope, half = rope / 2;
  const float eps = float(c.rms_norm_eps);
  const float* cos = ws_.rope_cos.get(T * half);
  const float* sin = ws_.rope_sin.get(T * half);

  // The projections of xn in one pass over the pool: queries [T][heads][nope | rope] (through
  // the low-rank q_a when the model has one) and the new cache rows [T][latent | rope key].
  float* q = ws_.q.get(T * heads * qk);
  float* kv = ws_.kv.get(T * row);
  float* q_a = ws_.q_a.get(T * c.q_lora_rank);
  const int64_t d = c.hidden_size;
  const MatmulJob projections[] = {
      {&w.kv_a, xn, d, T, kv, row},
      c.q_lora_rank > 0 ? MatmulJob{&w.q_a, xn, d, T, q_a, c.q_lora_rank} : MatmulJob{&w.q, xn, d, T, q, heads * qk}};
  matmul_batch(projections, pool_, input_);
  if (c.q_lora_rank > 0) {
    norm_rows(q_a, T, w.q_a_norm, q_a);
    matmul(w.q_b, q_a, T, q, pool_, input_);
  }

  // Each new token's cache row goes into its sequence's cache: normalised latent, then the
  // rotated shared key.
  int64_t token = 0, visible = 0;
  for (const SequenceSlice& s : slices) {
    const int64_t first_pos = s.cache->length();
    visible = std::max(visible, first_pos + s.count);
    in_parallel(s.count, row, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0, t = token + i0; i < i1; ++i, ++t) {
        float* cache_row = s.cache->layer(cache_layer) + (first_pos + i) * row;
        rmsnorm(kv + t * row, row, 1, rank, w.kv_a_norm.data(), eps, cache_row, row);
        std::copy(kv + t * row + rank, kv + (t + 1) * row, cache_row + rank);
        rope_apply(cache_row + rank, rope, cos + t * half, sin + t * half);
      }
    });
    token += s.count;
  }

  // Per head: fold the key half of kv_b into the query (q_nope W_k gives a latent-space
  // query), attend over each sequence's latent cache, then apply the value half. The heads go
  // to the pool in one group per thread, so that each group reads the cache once for all its
  // heads (the results are the same whatever the grouping).
  float* q_latent = ws_.q_latent.get(heads * T * rank);
  float* o_latent = ws_.o_latent.get(heads * T * rank);
  const int64_t groups = std::min(heads, static_cast<int64_t>(pool_.size()));
  const int64_t scratch_floats = latent_attention_scratch_floats(rank, rope, (heads + groups - 1) / groups, T, visible);
  float* scratch = ws_.attention_scratch.get(groups * scratch_floats);
  float* o = ws_.o.get(T * heads * v_dim);
  pool_.parallel_for(static_cast<size_t>(groups), [&](size_t g) {
    const int64_t h0 = static_cast<int64_t>(g) * heads / groups, h1 = (static_cast<int64_t>(g) + 1) * heads / groups;
    const bool split = w.kv_b.empty();  // (k_b holds each head's key half transposed: [rank][nope])
    for (int64_t h = h0; h < h1; ++h) {
      float* qh = q + h * qk;
      for (int64_t t = 0; t < T; ++t) rope_apply(qh + t * heads * qk + nope, rope, cos + t * half, sin + t * half);
      float* ql = q_latent + h * T * rank;
      if (split) {
        matmul_rows(w.k_b.row_slice(h * rank, rank), qh, heads * qk, T, ql, rank, 0, rank, input_);
      } else {
        matmul_transposed(w.kv_b.row_slice(h * (nope + v_dim), nope), qh, heads * qk, T, ql, rank);
      }
    }
    int64_t first = 0;  // the slice's first row
    for (const SequenceSlice& s : slices) {
      const LatentQueries queries{q_latent + h0 * T * rank + first * rank, rank, T * rank,
                                  q + h0 * qk + first * heads * qk + nope, heads * qk, qk};
      latent_attention(queries, h1 - h0, s.count, s.cache->length(), s.cache->layer(cache_layer), rank, rope,
                       rope_.softmax_scale, scratch + static_cast<int64_t>(g) * scratch_floats,
                       o_latent + h0 * T * rank + first * rank, T * rank);
      first += s.count;
    }
    for (int64_t h = h0; h < h1; ++h) {
      const Matrix w_value =
          split ? w.v_b.row_slice(h * v_dim, v_dim) : w.kv_b.row_slice(h * (nope + v_dim) + nope, v_dim);
      matmul_rows(w_value, o_latent + h * T * rank, rank, T, o + h * v_dim, heads * v_dim, 0, v_dim, input_);
    }
  });
  matmul(w.o, o, T, out, pool_, input_);
}

}  // namespace dsv3
