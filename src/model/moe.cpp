// Feed-forward networks: the dense SwiGLU and DeepSeekMoE (architecture.md).
#include <algorithm>

#include "kernels/cpu/matmul.h"
#include "kernels/cpu/swiglu.h"
#include "model/model.h"
#include "model/router.h"

namespace dsv3 {

void Model::swiglu_ffn(const SwiGluWeights& w, const float* x, int64_t T, float* out) {
  const int64_t width = w.gate.rows;
  float* gate = ws_.gate.get(T * width);
  float* up = ws_.up.get(T * width);
  matmul(w.gate, x, T, gate, pool_);
  matmul(w.up, x, T, up, pool_);
  swiglu(gate, up, T * width, gate);
  matmul(w.down, gate, T, out, pool_);
}

void Model::moe(const MoeWeights& w, const float* xn, int64_t T, float* out) {
  const ModelConfig& c = config_;
  const int64_t d = c.hidden_size, n = c.n_routed_experts, k = c.num_experts_per_tok;

  float* logits = ws_.router.get(T * n);
  matmul(w.router, xn, T, logits, pool_);
  ws_.expert_ids.resize(static_cast<size_t>(T * k));
  ws_.expert_weights.resize(static_cast<size_t>(T * k));
  float* scratch = ws_.routing_scratch.get(3 * n);
  const float* bias = w.correction_bias.empty() ? nullptr : w.correction_bias.data();
  for (int64_t t = 0; t < T; ++t)
    route_token(c, logits + t * n, bias, scratch, ws_.expert_ids.data() + t * k, ws_.expert_weights.data() + t * k);

  // Shared experts see every token; routed experts add their weighted outputs in expert
  // order, so each token's sum has a fixed order whatever the thread count. A shard of the
  // experts sums its part apart, then all shards' parts are added up.
  if (!w.shared.empty()) {
    swiglu_ffn(w.shared, xn, T, out);
  } else {
    std::fill(out, out + T * d, 0.0f);
  }
  const bool sharded = expert_count_ > 0;
  float* routed = sharded ? ws_.routed.get(T * d) : out;
  if (sharded) std::fill(routed, routed + T * d, 0.0f);
  float* expert_in = ws_.expert_in.get(T * d);
  float* expert_out = ws_.expert_out.get(T * d);
  auto& tokens = ws_.token_order;
  for (int64_t e = sharded ? first_expert_ : 0; e < (sharded ? first_expert_ + expert_count_ : n); ++e) {
    tokens.clear();
    for (int64_t i = 0; i < T * k; ++i)
      if (ws_.expert_ids[i] == e) tokens.push_back(static_cast<int32_t>(i));  // i = token * k + slot
    if (tokens.empty()) continue;
    const int64_t count = static_cast<int64_t>(tokens.size());
    for (int64_t j = 0; j < count; ++j) std::copy_n(xn + (tokens[j] / k) * d, d, expert_in + j * d);
    swiglu_ffn(w.experts[e], expert_in, count, expert_out);
    for (int64_t j = 0; j < count; ++j) {
      const float g = ws_.expert_weights[tokens[j]];
      float* o = routed + (tokens[j] / k) * d;
      for (int64_t i = 0; i < d; ++i) o[i] += g * expert_out[j * d + i];
    }
  }
  if (sharded) {
    sum_over_shards_(routed, T * d);
    for (int64_t i = 0; i < T * d; ++i) out[i] += routed[i];
  }
}

}  // namespace dsv3
