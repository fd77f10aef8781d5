// DeepSeek-V3 in GGUF files as llama.cpp's `deepseek2` architecture lays it out, both ways.
//
// Metadata: general.architecture "deepseek2" and deepseek2.* keys (block_count counts the
// MTP layers too, as nextn_predict_layers says; attention.key_length_mla/value_length_mla
// are the per-head sizes, rope.scaling.yarn_log_multiplier is 0.1 * mscale_all_dim).
// Tensors (N = layer; the MTP layer is N = num_hidden_layers), HF name -> GGUF name:
//   model.embed_tokens / model.norm / lm_head          -> token_embd / output_norm / output
//   input_layernorm, post_attention_layernorm         -> blk.N.attn_norm, blk.N.ffn_norm
//   self_attn.{q_a_proj, q_a_layernorm, q_b_proj, q_proj, kv_a_proj_with_mqa, kv_a_layernorm, o_proj}
//                                                      -> blk.N.attn_{q_a, q_a_norm, q_b, q, kv_a_mqa, kv_a_norm, output}
//   self_attn.kv_b_proj -> blk.N.attn_k_b [heads][kv_lora_rank][nope] (each head's key half,
//                          transposed) and blk.N.attn_v_b [heads][v][kv_lora_rank];
//                          older files hold it whole as blk.N.attn_kv_b
//   mlp.{gate,up,down}_proj (dense)                   -> blk.N.ffn_{gate,up,down}
//   mlp.gate, mlp.gate.e_score_correction_bias        -> blk.N.ffn_gate_inp, blk.N.exp_probs_b.bias
//   mlp.experts.E.{gate,up,down}_proj                 -> blk.N.ffn_{gate,up,down}_exps [experts][rows][cols]
//   mlp.shared_experts.{gate,up,down}_proj            -> blk.N.ffn_{gate,up,down}_shexp
//   MTP: embed_tokens, enorm, hnorm, eh_proj, shared_head.{norm,head}
//                                                      -> blk.N.nextn.{embed_tokens, enorm, hnorm, eh_proj,
//                                                         shared_head_norm, shared_head_head}
// Shapes are written in ggml's order (ne[0] fastest): a [rows, cols] weight is [cols, rows].
// Loading binds views into the mapped file (experts are row ranges of the stacked tensor);
// only kv_b is built anew, from k_b and v_b, when both are F32, F16 or BF16 (in that dtype:
// the Hugging Face checkpoint's values and arithmetic); halves of a block dtype (Q8_0, ...)
// are bound as they are, as AttentionWeights::k_b and v_b (a joined copy would have to be F32).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "formats/gguf.h"
#include "formats/hf_weights.h"
#include "model/config.h"
#include "model/weights.h"

namespace dsv3 {

class GgufModel {
 public:
  // Opens and validates the file and reads its config; errors name the file and key.
  explicit GgufModel(const std::string& path);

  const GgufFile& file() const { return *file_; }
  const ModelConfig& config() const { return config_; }
  // Views into the file (and into kv_b buffers held here); every shape checked against the config.
  ModelWeights bind_weights();

 private:
  std::unique_ptr<GgufFile> file_;
  ModelConfig config_;
  std::vector<std::vector<uint8_t>> joined_kv_b_;
};

// What convert writes: the projections, experts, embeddings and heads in `dtype` (BF16 or
// Q8_0; a Q8_0 tensor whose rows are not whole blocks falls back to F16, as llama.cpp's
// converter does); norms, biases and the router in F32. `fill` supplies each checkpoint
// tensor's FP32 values (rows * max(cols, 1)). `tokenizer_dir` holding a tokenizer.json
// adds the tokenizer.ggml.* metadata llama.cpp tokenizes with. Written atomically.
void write_gguf_model(const std::string& path, const ModelConfig& config, DType dtype, const std::string& model_name,
                      const std::string& tokenizer_dir, const std::function<void(const WeightSlot&, float*)>& fill);

}  // namespace dsv3
