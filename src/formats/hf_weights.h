// The tensors of a Hugging Face DeepSeek-V3 checkpoint (checkpoint.md): the one place that
// knows their names, shapes and storage roles. Loading binds them to ModelWeights, checking
// every shape against the config; writing a checkpoint and laying out training parameters
// enumerate the same list.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "formats/checkpoint.h"
#include "model/config.h"
#include "model/weights.h"

namespace dsv3 {

enum class WeightRole {
  Projection,  // attention and feed-forward projections: FP8 in the official release
  Matrix,      // embeddings, heads, router, eh_proj: BF16 in the official release
  Norm,        // RMSNorm weights
  Bias,        // e_score_correction_bias: always F32
};

struct WeightSlot {
  std::string name;
  int64_t rows = 0;
  int64_t cols = 0;  // 0 for 1-D tensors
  WeightRole role = WeightRole::Matrix;
  // The MTP module's embedding and head: stored in checkpoints as copies, trained as the
  // main model's own tensors (one parameter, one gradient).
  bool mtp_copy_of_main = false;
};

// Sizes `weights` for the config (layers, experts, MTP) and calls fn for every tensor of
// the checkpoint with a pointer to where it belongs in `weights` (the matrix for 2-D
// tensors, else the vector). Pointers are valid during the call only: `weights` keeps
// growing while it is visited.
template <typename W>
using WeightVisitor = std::function<void(const WeightSlot&, typename W::MatrixType*, typename W::VectorType*)>;
template <typename W>
void for_each_weight(const ModelConfig& config, W& weights, const WeightVisitor<W>& fn);

// The tensor list alone.
std::vector<WeightSlot> checkpoint_tensors(const ModelConfig& config);

// The returned views point into `checkpoint`, which must outlive them.
ModelWeights bind_weights(const Checkpoint& checkpoint, const ModelConfig& config);

// One 2-D tensor as a view (with its block scales when FP8), and one 1-D tensor decoded;
// errors name the tensor and file when it is missing or its shape or scales do not fit.
Matrix bind_matrix(const Checkpoint& checkpoint, const std::string& name, int64_t rows, int64_t cols);
std::vector<float> bind_vector(const Checkpoint& checkpoint, const std::string& name, int64_t n);

// ---------------------------------------------------------------------------------------

namespace detail {

template <typename W, typename Layer>
void visit_layer(const WeightVisitor<W>& fn, const ModelConfig& c, int64_t index, bool moe, Layer& l) {
  using M = typename W::MatrixType;
  using V = typename W::VectorType;
  const std::string p = "model.layers." + std::to_string(index) + ".";
  const std::string a = p + "self_attn.";
  const int64_t d = c.hidden_size, h = c.num_attention_heads;
  auto matrix = [&](const std::string& name, int64_t rows, int64_t cols, WeightRole role, M& m) {
    fn(WeightSlot{name, rows, cols, role, false}, &m, nullptr);
  };
  auto vector = [&](const std::string& name, int64_t n, WeightRole role, V& v) {
    fn(WeightSlot{name, n, 0, role, false}, nullptr, &v);
  };
  auto swiglu = [&](const std::string& prefix, int64_t width, auto& w) {
    matrix(prefix + "gate_proj.weight", width, d, WeightRole::Projection, w.gate);
    matrix(prefix + "up_proj.weight", width, d, WeightRole::Projection, w.up);
    matrix(prefix + "down_proj.weight", d, width, WeightRole::Projection, w.down);
  };
  const auto P = WeightRole::Projection;
  vector(p + "input_layernorm.weight", d, WeightRole::Norm, l.attn_norm);
  if (c.q_lora_rank > 0) {
    matrix(a + "q_a_proj.weight", c.q_lora_rank, d, P, l.attn.q_a);
    vector(a + "q_a_layernorm.weight", c.q_lora_rank, WeightRole::Norm, l.attn.q_a_norm);
    matrix(a + "q_b_proj.weight", h * c.qk_head_dim(), c.q_lora_rank, P, l.attn.q_b);
  } else {
    matrix(a + "q_proj.weight", h * c.qk_head_dim(), d, P, l.attn.q);
  }
  matrix(a + "kv_a_proj_with_mqa.weight", c.kv_lora_rank + c.qk_rope_head_dim, d, P, l.attn.kv_a);
  vector(a + "kv_a_layernorm.weight", c.kv_lora_rank, WeightRole::Norm, l.attn.kv_a_norm);
  matrix(a + "kv_b_proj.weight", h * (c.qk_nope_head_dim + c.v_head_dim), c.kv_lora_rank, P, l.attn.kv_b);
  matrix(a + "o_proj.weight", d, h * c.v_head_dim, P, l.attn.o);
  vector(p + "post_attention_layernorm.weight", d, WeightRole::Norm, l.ffn_norm);

  l.is_moe = moe;
  if (!moe) {
    swiglu(p + "mlp.", c.intermediate_size, l.dense);
    return;
  }
  matrix(p + "mlp.gate.weight", c.n_routed_experts, d, WeightRole::Matrix, l.moe.router);
  if (c.topk_method == TopkMethod::NoauxTc)
    vector(p + "mlp.gate.e_score_correction_bias", c.n_routed_experts, WeightRole::Bias, l.moe.correction_bias);
  // Grown one entry at a time (not resized up front) so that a config with absurd counts
  // fails at its first missing tensor instead of allocating for all of them.
  l.moe.experts.clear();
  for (int64_t e = 0; e < c.n_routed_experts; ++e)
    swiglu(p + "mlp.experts." + std::to_string(e) + ".", c.moe_intermediate_size, l.moe.experts.emplace_back());
  if (c.n_shared_experts > 0) swiglu(p + "mlp.shared_experts.", c.n_shared_experts * c.moe_intermediate_size, l.moe.shared);
}

}  // namespace detail

template <typename W>
void for_each_weight(const ModelConfig& c, W& w, const WeightVisitor<W>& fn) {
  const int64_t d = c.hidden_size;
  auto matrix = [&](const std::string& name, int64_t rows, int64_t cols, WeightRole role, auto& m, bool copy = false) {
    fn(WeightSlot{name, rows, cols, role, copy}, &m, nullptr);
  };
  auto vector = [&](const std::string& name, int64_t n, auto& v) { fn(WeightSlot{name, n, 0, WeightRole::Norm, false}, nullptr, &v); };
  matrix("model.embed_tokens.weight", c.vocab_size, d, WeightRole::Matrix, w.embed);
  w.layers.clear();
  for (int64_t i = 0; i < c.num_hidden_layers; ++i)
    detail::visit_layer<W>(fn, c, i, c.is_moe_layer(i), w.layers.emplace_back());
  vector("model.norm.weight", d, w.final_norm);
  if (!c.tie_word_embeddings) matrix("lm_head.weight", c.vocab_size, d, WeightRole::Matrix, w.head);
  if (!c.has_mtp()) return;

  const std::string p = "model.layers." + std::to_string(c.num_hidden_layers) + ".";
  auto& m = w.mtp.emplace();
  matrix(p + "embed_tokens.weight", c.vocab_size, d, WeightRole::Matrix, m.embed, true);
  vector(p + "enorm.weight", d, m.enorm);
  vector(p + "hnorm.weight", d, m.hnorm);
  matrix(p + "eh_proj.weight", d, 2 * d, WeightRole::Matrix, m.eh_proj);
  detail::visit_layer<W>(fn, c, c.num_hidden_layers, /*moe=*/true, m.block);
  vector(p + "shared_head.norm.weight", d, m.head_norm);
  matrix(p + "shared_head.head.weight", c.vocab_size, d, WeightRole::Matrix, m.head, true);
}

}  // namespace dsv3
