#include "model/model.h"

#include <algorithm>

#include "base/error.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/rmsnorm.h"
#include "kernels/cpu/rope.h"

namespace dsv3 {

Model::Model(ModelConfig config, ModelWeights weights, ThreadPool& pool)
    : config_(std::move(config)), weights_(std::move(weights)), pool_(pool), rope_(rope_params(config_)) {}

void Model::shard_experts(int64_t first, int64_t count, std::function<void(float*, int64_t)> sum_over_shards) {
  if (first < 0 || count < 1 || first + count > config_.n_routed_experts)
    fail("expert shard [", first, ", ", first + count, ") is outside the model's ", config_.n_routed_experts,
         " routed experts");
  first_expert_ = first;
  expert_count_ = count;
  sum_over_shards_ = std::move(sum_over_shards);
}

KvCache Model::make_cache(int64_t capacity) const {
  return KvCache(config_.num_hidden_layers, capacity, config_.kv_lora_rank + config_.qk_rope_head_dim);
}

KvCache Model::make_mtp_cache(int64_t capacity) const {
  return KvCache(1, capacity, config_.kv_lora_rank + config_.qk_rope_head_dim);
}

int64_t Model::begin_pass(std::span<const SequenceSlice> slices) {
  int64_t T = 0;
  for (const SequenceSlice& s : slices) {
    if (s.count < 1) fail("a sequence in a forward pass has no tokens");
    for (const SequenceSlice& other : slices)
      if (&other != &s && other.cache == s.cache) fail("two sequences in one forward pass share a cache");
    if (s.cache->length() + s.count > s.cache->capacity())
      fail("context overflow: ", s.cache->length(), " cached + ", s.count, " new tokens exceed the context of ",
           s.cache->capacity());
    T += s.count;
  }
  ws_.tokens.clear();
  for (const SequenceSlice& s : slices) ws_.tokens.insert(ws_.tokens.end(), s.tokens, s.tokens + s.count);
  return T;
}

void Model::position_tables(std::span<const SequenceSlice> slices) {
  const int64_t half = config_.qk_rope_head_dim / 2;
  int64_t T = 0;
  for (const SequenceSlice& s : slices) T += s.count;
  float* cos = ws_.rope_cos.get(T * half);
  float* sin = ws_.rope_sin.get(T * half);
  for (const SequenceSlice& s : slices) {
    rope_tables(rope_.inv_freq.data(), config_.qk_rope_head_dim, s.cache->length(), s.count, rope_.magnitude, cos,
                sin);
    cos += s.count * half;
    sin += s.count * half;
  }
}

void Model::embed(const Matrix& table, const int32_t* tokens, int64_t T, float* out) const {
  for (int64_t t = 0; t < T; ++t) {
    if (tokens[t] < 0 || tokens[t] >= config_.vocab_size)
      fail("token id ", tokens[t], " is outside the vocabulary [0, ", config_.vocab_size, ")");
    table.decode_row(tokens[t], 0, table.cols, out + t * table.cols);
  }
}

void Model::head(const Matrix& head, std::span<const SequenceSlice> slices, const float* normed, float* logits) {
  const int64_t d = config_.hidden_size;
  int64_t T = 0, rows = 0;
  for (const SequenceSlice& s : slices) {
    T += s.count;
    rows += s.logit_rows < 0 ? s.count : std::min(s.logit_rows, s.count);
  }
  if (rows == T) return matmul(head, normed, T, logits, pool_, input_);
  // Gather the rows that need logits (the matmul gives each row the same result either way).
  float* in = ws_.head_in.get(rows * d);
  for (const SequenceSlice& s : slices) {
    const int64_t n = s.logit_rows < 0 ? s.count : std::min(s.logit_rows, s.count);
    in = std::copy_n(normed + (s.count - n) * d, n * d, in);
    normed += s.count * d;
  }
  matmul(head, ws_.head_in.get(rows * d), rows, logits, pool_, input_);
}

void Model::forward(const int32_t* tokens, int64_t T, KvCache& cache, float* hidden, float* logits,
                    int64_t logit_rows) {
  const SequenceSlice slice{tokens, T, &cache, logit_rows};
  forward(std::span(&slice, 1), hidden, logits);
}

void Model::forward(std::span<const SequenceSlice> slices, float* hidden, float* logits) {
  const int64_t T = begin_pass(slices), d = config_.hidden_size;
  float* x = ws_.x.get(T * d);
  embed(weights_.embed, ws_.tokens.data(), T, x);
  position_tables(slices);
  for (int64_t i = 0; i < config_.num_hidden_layers; ++i) decoder_block(weights_.layers[i], x, T, slices, i);
  for (const SequenceSlice& s : slices) s.cache->advance(s.count);

  float* normed = hidden ? hidden : ws_.xn.get(T * d);
  norm_rows(x, T, weights_.final_norm, normed);
  if (logits) head(weights_.head, slices, normed, logits);
}

void Model::forward_mtp(const int32_t* next_tokens, const float* hidden, int64_t T, KvCache& mtp_cache,
                        float* logits, int64_t logit_rows, float* hidden_out) {
  const SequenceSlice slice{next_tokens, T, &mtp_cache, logit_rows, hidden};
  forward_mtp(std::span(&slice, 1), logits, hidden_out);
}

void Model::forward_mtp(std::span<const SequenceSlice> slices, float* logits, float* hidden_out) {
  if (!weights_.mtp) fail("this model has no MTP module (num_nextn_predict_layers is 0)");
  const MtpWeights& m = *weights_.mtp;
  const int64_t T = begin_pass(slices), d = config_.hidden_size;
  const float eps = float(config_.rms_norm_eps);

  // Input: concat(enorm(E[next token]), hnorm(hidden)), embedding first (checkpoint.md).
  float* hidden = ws_.mtp_hidden.get(T * d);
  for (const SequenceSlice& s : slices) hidden = std::copy_n(s.hidden, s.count * d, hidden);
  float* concat = ws_.mtp_concat.get(T * 2 * d);
  float* embedded = ws_.xn.get(T * d);
  embed(m.embed, ws_.tokens.data(), T, embedded);
  const float* main_hidden = ws_.mtp_hidden.get(T * d);
  in_parallel(T, 2 * d, [&](int64_t t0, int64_t t1) {
    rmsnorm(embedded + t0 * d, d, t1 - t0, d, m.enorm.data(), eps, concat + t0 * 2 * d, 2 * d);
    rmsnorm(main_hidden + t0 * d, d, t1 - t0, d, m.hnorm.data(), eps, concat + t0 * 2 * d + d, 2 * d);
  });
  float* x = ws_.x.get(T * d);
  matmul(m.eh_proj, concat, T, x, pool_, input_);

  position_tables(slices);
  decoder_block(m.block, x, T, slices, 0);
  for (const SequenceSlice& s : slices) s.cache->advance(s.count);

  float* normed = hidden_out ? hidden_out : ws_.xn.get(T * d);
  norm_rows(x, T, m.head_norm, normed);
  if (logits) head(m.head, slices, normed, logits);
}

void Model::norm_rows(const float* x, int64_t T, const std::vector<float>& weight, float* out) {
  const int64_t n = static_cast<int64_t>(weight.size());
  in_parallel(T, n, [&](int64_t t0, int64_t t1) {
    rmsnorm(x + t0 * n, n, t1 - t0, n, weight.data(), float(config_.rms_norm_eps), out + t0 * n, n);
  });
}

void Model::decoder_block(const LayerWeights& layer, float* x, int64_t T, std::span<const SequenceSlice> slices,
                          int64_t cache_layer) {
  const int64_t d = config_.hidden_size;
  const float eps = float(config_.rms_norm_eps);
  float* xn = ws_.xn.get(T * d);
  float* out = ws_.out.get(T * d);

  norm_rows(x, T, layer.attn_norm, xn);
  attention(layer.attn, xn, T, slices, cache_layer, out);
  in_parallel(T, d, [&](int64_t t0, int64_t t1) {  // the residual add and the next norm in one pass
    for (int64_t i = t0 * d; i < t1 * d; ++i) x[i] += out[i];
    rmsnorm(x + t0 * d, d, t1 - t0, d, layer.ffn_norm.data(), eps, xn + t0 * d, d);
  });
  feed_forward(layer, xn, T, out);
  in_parallel(T, d, [&](int64_t t0, int64_t t1) {
    for (int64_t i = t0 * d; i < t1 * d; ++i) x[i] += out[i];
  });
}

void Model::feed_forward(const LayerWeights& layer, const float* xn, int64_t T, float* out) {
  if (layer.is_moe) {
    moe(layer.moe, xn, T, out);
  } else {
    swiglu_ffn(layer.dense, xn, T, out);
  }
}

}  // namespace dsv3
