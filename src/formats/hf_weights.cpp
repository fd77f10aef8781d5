#include "formats/hf_weights.h"

#include <sstream>

#include "base/error.h"

namespace dsv3 {

namespace {

using Visit = std::function<void(const WeightSlot&)>;

void visit_matrix(const Visit& fn, std::string name, int64_t rows, int64_t cols, WeightRole role, Matrix& m) {
  fn(WeightSlot{std::move(name), rows, cols, role, &m, nullptr});
}
void visit_vector(const Visit& fn, std::string name, int64_t n, WeightRole role, std::vector<float>& v) {
  fn(WeightSlot{std::move(name), n, 0, role, nullptr, &v});
}

void visit_swiglu(const Visit& fn, const std::string& p, int64_t d, int64_t width, SwiGluWeights& w) {
  visit_matrix(fn, p + "gate_proj.weight", width, d, WeightRole::Projection, w.gate);
  visit_matrix(fn, p + "up_proj.weight", width, d, WeightRole::Projection, w.up);
  visit_matrix(fn, p + "down_proj.weight", d, width, WeightRole::Projection, w.down);
}

void visit_layer(const Visit& fn, const ModelConfig& c, int64_t index, bool moe, LayerWeights& l) {
  const std::string p = "model.layers." + std::to_string(index) + ".";
  const std::string a = p + "self_attn.";
  const int64_t d = c.hidden_size, h = c.num_attention_heads;
  const auto P = WeightRole::Projection;
  visit_vector(fn, p + "input_layernorm.weight", d, WeightRole::Norm, l.attn_norm);
  if (c.q_lora_rank > 0) {
    visit_matrix(fn, a + "q_a_proj.weight", c.q_lora_rank, d, P, l.attn.q_a);
    visit_vector(fn, a + "q_a_layernorm.weight", c.q_lora_rank, WeightRole::Norm, l.attn.q_a_norm);
    visit_matrix(fn, a + "q_b_proj.weight", h * c.qk_head_dim(), c.q_lora_rank, P, l.attn.q_b);
  } else {
    visit_matrix(fn, a + "q_proj.weight", h * c.qk_head_dim(), d, P, l.attn.q);
  }
  visit_matrix(fn, a + "kv_a_proj_with_mqa.weight", c.kv_lora_rank + c.qk_rope_head_dim, d, P, l.attn.kv_a);
  visit_vector(fn, a + "kv_a_layernorm.weight", c.kv_lora_rank, WeightRole::Norm, l.attn.kv_a_norm);
  visit_matrix(fn, a + "kv_b_proj.weight", h * (c.qk_nope_head_dim + c.v_head_dim), c.kv_lora_rank, P, l.attn.kv_b);
  visit_matrix(fn, a + "o_proj.weight", d, h * c.v_head_dim, P, l.attn.o);
  visit_vector(fn, p + "post_attention_layernorm.weight", d, WeightRole::Norm, l.ffn_norm);

  l.is_moe = moe;
  if (!moe) {
    visit_swiglu(fn, p + "mlp.", d, c.intermediate_size, l.dense);
    return;
  }
  visit_matrix(fn, p + "mlp.gate.weight", c.n_routed_experts, d, WeightRole::Matrix, l.moe.router);
  if (c.topk_method == TopkMethod::NoauxTc)
    visit_vector(fn, p + "mlp.gate.e_score_correction_bias", c.n_routed_experts, WeightRole::Bias,
                 l.moe.correction_bias);
  // Grown one entry at a time (not resized up front) so that a config with absurd counts
  // fails at its first missing tensor instead of allocating for all of them.
  l.moe.experts.clear();
  for (int64_t e = 0; e < c.n_routed_experts; ++e)
    visit_swiglu(fn, p + "mlp.experts." + std::to_string(e) + ".", d, c.moe_intermediate_size,
                 l.moe.experts.emplace_back());
  if (c.n_shared_experts > 0)
    visit_swiglu(fn, p + "mlp.shared_experts.", d, c.n_shared_experts * c.moe_intermediate_size, l.moe.shared);
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::ostringstream s;
  s << "[";
  for (size_t i = 0; i < shape.size(); ++i) s << (i ? ", " : "") << shape[i];
  s << "]";
  return s.str();
}

const TensorInfo& checked_tensor(const Checkpoint& ckpt, const std::string& name, const std::vector<int64_t>& shape) {
  const TensorInfo& t = ckpt.get(name);
  if (t.shape != shape)
    fail("tensor shape ", shape_string(t.shape), " does not match the config's ", shape_string(shape), " (", *t.file,
         ": ", name, ")");
  return t;
}

Matrix bind_matrix(const Checkpoint& ckpt, const std::string& name, int64_t rows, int64_t cols) {
  const TensorInfo& t = checked_tensor(ckpt, name, {rows, cols});
  Matrix m{t.dtype, rows, cols, t.data, nullptr, 0};
  if (t.dtype != DType::F8_E4M3) return m;
  const std::string scale_name = name + "_scale_inv";
  const TensorInfo* s = ckpt.find(scale_name);
  if (!s) fail("FP8 tensor has no ", scale_name, " block scales (", *t.file, ": ", name, ")");
  if (s->dtype != DType::F32)
    fail("block scales must be F32, got ", dtype_name(s->dtype), " (", *s->file, ": ", scale_name, ")");
  const std::vector<int64_t> scale_shape = {(rows + kFp8BlockSize - 1) / kFp8BlockSize,
                                            (cols + kFp8BlockSize - 1) / kFp8BlockSize};
  if (s->shape != scale_shape)
    fail("block scale shape ", shape_string(s->shape), " does not match ", shape_string(scale_shape), " for a ", rows,
         "x", cols, " weight (", *s->file, ": ", scale_name, ")");
  m.scale_inv = reinterpret_cast<const float*>(s->data);
  return m;
}

std::vector<float> bind_vector(const Checkpoint& ckpt, const std::string& name, int64_t n) {
  const TensorInfo& t = checked_tensor(ckpt, name, {n});
  if (t.dtype == DType::F8_E4M3) fail("1-D tensor cannot be FP8 (", *t.file, ": ", name, ")");
  return decode_to_f32(Matrix{t.dtype, 1, n, t.data, nullptr, 0});
}

}  // namespace

void for_each_weight(const ModelConfig& c, ModelWeights& w, const Visit& fn) {
  const int64_t d = c.hidden_size;
  visit_matrix(fn, "model.embed_tokens.weight", c.vocab_size, d, WeightRole::Matrix, w.embed);
  w.layers.clear();
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) visit_layer(fn, c, i, c.is_moe_layer(i), w.layers.emplace_back());
  visit_vector(fn, "model.norm.weight", d, WeightRole::Norm, w.final_norm);
  if (!c.tie_word_embeddings) visit_matrix(fn, "lm_head.weight", c.vocab_size, d, WeightRole::Matrix, w.head);
  if (!c.has_mtp()) return;

  const std::string p = "model.layers." + std::to_string(c.num_hidden_layers) + ".";
  MtpWeights& m = w.mtp.emplace();
  visit_matrix(fn, p + "embed_tokens.weight", c.vocab_size, d, WeightRole::Matrix, m.embed);
  visit_vector(fn, p + "enorm.weight", d, WeightRole::Norm, m.enorm);
  visit_vector(fn, p + "hnorm.weight", d, WeightRole::Norm, m.hnorm);
  visit_matrix(fn, p + "eh_proj.weight", d, 2 * d, WeightRole::Matrix, m.eh_proj);
  visit_layer(fn, c, c.num_hidden_layers, /*moe=*/true, m.block);
  visit_vector(fn, p + "shared_head.norm.weight", d, WeightRole::Norm, m.head_norm);
  visit_matrix(fn, p + "shared_head.head.weight", c.vocab_size, d, WeightRole::Matrix, m.head);
}

ModelWeights bind_weights(const Checkpoint& checkpoint, const ModelConfig& config) {
  ModelWeights w;
  for_each_weight(config, w, [&](const WeightSlot& slot) {
    if (slot.matrix) {
      *slot.matrix = bind_matrix(checkpoint, slot.name, slot.rows, slot.cols);
    } else {
      *slot.vector = bind_vector(checkpoint, slot.name, slot.rows);
    }
  });
  if (config.tie_word_embeddings) w.head = w.embed;
  return w;
}

}  // namespace dsv3
