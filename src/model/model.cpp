#include "model/model.h"

#include <algorithm>

#include "base/error.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/rmsnorm.h"
#include "kernels/cpu/rope.h"

namespace dsv3 {

Model::Model(ModelConfig config, ModelWeights weights, ThreadPool& pool)
    : config_(std::move(config)), weights_(std::move(weights)), pool_(pool), rope_(rope_params(config_)) {}

KvCache Model::make_cache(int64_t capacity) const {
  return KvCache(config_.num_hidden_layers, capacity, config_.kv_lora_rank + config_.qk_rope_head_dim);
}

KvCache Model::make_mtp_cache(int64_t capacity) const {
  return KvCache(1, capacity, config_.kv_lora_rank + config_.qk_rope_head_dim);
}

void Model::check_room(const KvCache& cache, int64_t T) const {
  if (cache.length() + T > cache.capacity())
    fail("context overflow: ", cache.length(), " cached + ", T, " new tokens exceed the context of ", cache.capacity());
}

void Model::embed(const Matrix& table, const int32_t* tokens, int64_t T, float* out) const {
  for (int64_t t = 0; t < T; ++t) {
    if (tokens[t] < 0 || tokens[t] >= config_.vocab_size)
      fail("token id ", tokens[t], " is outside the vocabulary [0, ", config_.vocab_size, ")");
    table.decode_row(tokens[t], 0, table.cols, out + t * table.cols);
  }
}

void Model::head(const Matrix& head, const float* normed, int64_t T, float* logits, int64_t logit_rows) {
  const int64_t rows = logit_rows < 0 ? T : std::min(logit_rows, T);
  matmul(head, normed + (T - rows) * config_.hidden_size, rows, logits, pool_);
}

void Model::forward(const int32_t* tokens, int64_t T, KvCache& cache, float* hidden, float* logits,
                    int64_t logit_rows) {
  check_room(cache, T);
  const int64_t d = config_.hidden_size;
  const int64_t first_pos = cache.length();
  float* x = ws_.x.get(T * d);
  embed(weights_.embed, tokens, T, x);

  const int64_t half = config_.qk_rope_head_dim / 2;
  rope_tables(rope_.inv_freq.data(), config_.qk_rope_head_dim, first_pos, T, rope_.magnitude,
              ws_.rope_cos.get(T * half), ws_.rope_sin.get(T * half));
  for (int64_t i = 0; i < config_.num_hidden_layers; ++i)
    decoder_block(weights_.layers[i], x, T, first_pos, cache.layer(i));
  cache.advance(T);

  float* normed = hidden ? hidden : ws_.xn.get(T * d);
  rmsnorm(x, d, T, d, weights_.final_norm.data(), float(config_.rms_norm_eps), normed, d);
  if (logits) head(weights_.head, normed, T, logits, logit_rows);
}

void Model::forward_mtp(const int32_t* next_tokens, const float* hidden, int64_t T, KvCache& mtp_cache,
                        float* logits, int64_t logit_rows, float* hidden_out) {
  if (!weights_.mtp) fail("this model has no MTP module (num_nextn_predict_layers is 0)");
  check_room(mtp_cache, T);
  const MtpWeights& m = *weights_.mtp;
  const int64_t d = config_.hidden_size;
  const float eps = float(config_.rms_norm_eps);
  const int64_t first_pos = mtp_cache.length();

  // Input: concat(enorm(E[next token]), hnorm(hidden)), embedding first (checkpoint.md).
  float* concat = ws_.mtp_concat.get(T * 2 * d);
  float* embedded = ws_.xn.get(T * d);
  embed(m.embed, next_tokens, T, embedded);
  rmsnorm(embedded, d, T, d, m.enorm.data(), eps, concat, 2 * d);
  rmsnorm(hidden, d, T, d, m.hnorm.data(), eps, concat + d, 2 * d);
  float* x = ws_.x.get(T * d);
  matmul(m.eh_proj, concat, T, x, pool_);

  const int64_t half = config_.qk_rope_head_dim / 2;
  rope_tables(rope_.inv_freq.data(), config_.qk_rope_head_dim, first_pos, T, rope_.magnitude,
              ws_.rope_cos.get(T * half), ws_.rope_sin.get(T * half));
  decoder_block(m.block, x, T, first_pos, mtp_cache.layer(0));
  mtp_cache.advance(T);

  float* normed = hidden_out ? hidden_out : ws_.xn.get(T * d);
  rmsnorm(x, d, T, d, m.head_norm.data(), eps, normed, d);
  if (logits) head(m.head, normed, T, logits, logit_rows);
}

void Model::decoder_block(const LayerWeights& layer, float* x, int64_t T, int64_t first_pos, float* cache_rows) {
  const int64_t d = config_.hidden_size;
  const float eps = float(config_.rms_norm_eps);
  float* xn = ws_.xn.get(T * d);
  float* out = ws_.out.get(T * d);

  rmsnorm(x, d, T, d, layer.attn_norm.data(), eps, xn, d);
  attention(layer.attn, xn, T, first_pos, cache_rows, out);
  for (int64_t i = 0; i < T * d; ++i) x[i] += out[i];

  rmsnorm(x, d, T, d, layer.ffn_norm.data(), eps, xn, d);
  feed_forward(layer, xn, T, out);
  for (int64_t i = 0; i < T * d; ++i) x[i] += out[i];
}

void Model::feed_forward(const LayerWeights& layer, const float* xn, int64_t T, float* out) {
  if (layer.is_moe) {
    moe(layer.moe, xn, T, out);
  } else {
    swiglu_ffn(layer.dense, xn, T, out);
  }
}

}  // namespace dsv3
