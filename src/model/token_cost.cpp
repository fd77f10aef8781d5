#include "model/token_cost.h"

namespace dsv3 {

namespace {

// Bytes of a matrix as stored (FP8: its block scales too).
double stored_bytes(const Matrix& m) {
  if (m.empty()) return 0;
  double bytes = double(m.rows) * double(m.row_bytes());
  if (m.dtype == DType::F8_E4M3)
    bytes += double((m.rows + kFp8BlockSize - 1) / kFp8BlockSize) * double(m.scale_cols()) * sizeof(float);
  return bytes;
}

void add(TokenCost& cost, const Matrix& m, double share = 1.0) {
  if (m.empty()) return;
  cost.weight_bytes += share * stored_bytes(m);
  cost.flops += share * 2.0 * double(m.rows) * double(m.cols);
}

void add(TokenCost& cost, const SwiGluWeights& w, double share = 1.0) {
  add(cost, w.gate, share);
  add(cost, w.up, share);
  add(cost, w.down, share);
}

}  // namespace

TokenCost token_cost(const ModelConfig& config, const ModelWeights& weights) {
  TokenCost cost;
  cost.weight_bytes += stored_bytes(weights.embed) / double(weights.embed.rows);  // one row
  for (const LayerWeights& layer : weights.layers) {
    const AttentionWeights& a = layer.attn;
    for (const Matrix* m : {&a.q_a, &a.q_b, &a.q, &a.kv_a, &a.kv_b, &a.k_b, &a.v_b, &a.o}) add(cost, *m);
    if (!layer.is_moe) {
      add(cost, layer.dense);
      continue;
    }
    add(cost, layer.moe.router);
    add(cost, layer.moe.shared);
    // Experts have equal shapes: k of them, as an average share of all.
    const double share = double(config.num_experts_per_tok) / double(layer.moe.experts.size());
    for (const SwiGluWeights& e : layer.moe.experts) add(cost, e, share);
  }
  add(cost, weights.head);
  return cost;
}

}  // namespace dsv3
