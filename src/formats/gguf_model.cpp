#include "formats/gguf_model.h"

#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <tuple>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "formats/json_file.h"

namespace dsv3 {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kArch = "deepseek2";
// llama.cpp's enums as stored in the file.
constexpr uint32_t kGatingSoftmax = 1, kGatingSigmoid = 2;
constexpr int32_t kTokenNormal = 1, kTokenControl = 3, kTokenUserDefined = 4, kTokenUnused = 5;
constexpr uint32_t kQuantizationVersion = 2;
// The factor llama.cpp's converter puts in front of mscale_all_dim (yarn_log_multiplier).
constexpr float kYarnLogMultiplier = 0.1f;

std::string key(const std::string& name) { return std::string(kArch) + "." + name; }

// Where a checkpoint tensor lives in the file: a tensor name, and for a routed expert its
// index in the stacked tensor. kv_b_proj is split (see the header).
struct GgufPlace {
  std::string name;
  int64_t expert = -1;
  bool kv_b = false;
};

GgufPlace gguf_place(const std::string& hf) {
  static const std::map<std::string, std::string> kTopLevel = {
      {"model.embed_tokens.weight", "token_embd.weight"},
      {"model.norm.weight", "output_norm.weight"},
      {"lm_head.weight", "output.weight"}};
  static const std::map<std::string, std::string> kLayer = {
      {"input_layernorm.weight", "attn_norm.weight"},
      {"post_attention_layernorm.weight", "ffn_norm.weight"},
      {"self_attn.q_a_proj.weight", "attn_q_a.weight"},
      {"self_attn.q_a_layernorm.weight", "attn_q_a_norm.weight"},
      {"self_attn.q_b_proj.weight", "attn_q_b.weight"},
      {"self_attn.q_proj.weight", "attn_q.weight"},
      {"self_attn.kv_a_proj_with_mqa.weight", "attn_kv_a_mqa.weight"},
      {"self_attn.kv_a_layernorm.weight", "attn_kv_a_norm.weight"},
      {"self_attn.kv_b_proj.weight", "attn_kv_b.weight"},
      {"self_attn.o_proj.weight", "attn_output.weight"},
      {"mlp.gate_proj.weight", "ffn_gate.weight"},
      {"mlp.up_proj.weight", "ffn_up.weight"},
      {"mlp.down_proj.weight", "ffn_down.weight"},
      {"mlp.gate.weight", "ffn_gate_inp.weight"},
      {"mlp.gate.e_score_correction_bias", "exp_probs_b.bias"},
      {"mlp.shared_experts.gate_proj.weight", "ffn_gate_shexp.weight"},
      {"mlp.shared_experts.up_proj.weight", "ffn_up_shexp.weight"},
      {"mlp.shared_experts.down_proj.weight", "ffn_down_shexp.weight"},
      {"embed_tokens.weight", "nextn.embed_tokens.weight"},
      {"enorm.weight", "nextn.enorm.weight"},
      {"hnorm.weight", "nextn.hnorm.weight"},
      {"eh_proj.weight", "nextn.eh_proj.weight"},
      {"shared_head.norm.weight", "nextn.shared_head_norm.weight"},
      {"shared_head.head.weight", "nextn.shared_head_head.weight"}};
  if (auto it = kTopLevel.find(hf); it != kTopLevel.end()) return {it->second};
  const std::string layers = "model.layers.";
  const size_t dot = hf.find('.', layers.size());
  const std::string block = "blk." + hf.substr(layers.size(), dot - layers.size()) + ".";
  const std::string rest = hf.substr(dot + 1);
  const std::string experts = "mlp.experts.";
  if (rest.compare(0, experts.size(), experts) == 0) {
    const size_t end = rest.find('.', experts.size());
    const std::string proj = rest.substr(end + 1);  // gate_proj.weight
    return {block + "ffn_" + proj.substr(0, proj.find('_')) + "_exps.weight",
            std::stoll(rest.substr(experts.size(), end - experts.size()))};
  }
  const std::string& name = kLayer.at(rest);
  return {block + name, -1, rest == "self_attn.kv_b_proj.weight"};
}

std::string ggml_shape(const std::vector<int64_t>& ne) {
  std::string s = "[";
  for (size_t i = 0; i < ne.size(); ++i) s += (i ? ", " : "") + std::to_string(ne[i]);
  return s + "]";
}

// ------------------------------------------------------------------------------ config

class MetadataReader {
 public:
  explicit MetadataReader(const GgufFile& file) : file_(file) {}

  std::string where(const std::string& k) const { return file_.path() + ": " + k; }
  int64_t integer(const std::string& k) const { return file_.get(k).as_int(where(k)); }
  int64_t integer(const std::string& k, int64_t fallback) const {
    const GgufValue* v = file_.find(k);
    return v ? v->as_int(where(k)) : fallback;
  }
  double real(const std::string& k, double fallback) const {
    const GgufValue* v = file_.find(k);
    return v ? v->as_float(where(k)) : fallback;
  }
  bool boolean(const std::string& k, bool fallback) const {
    const GgufValue* v = file_.find(k);
    return v ? v->as_bool(where(k)) : fallback;
  }

 private:
  const GgufFile& file_;
};

ModelConfig read_config(const GgufFile& file) {
  const MetadataReader m(file);
  const std::string arch = file.get("general.architecture").as_string(m.where("general.architecture"));
  if (arch != kArch)
    fail("architecture '", arch, "' is not supported (only deepseek2) (", m.where("general.architecture"), ")");
  ModelConfig c;
  c.num_nextn_predict_layers = m.integer(key("nextn_predict_layers"), 0);
  c.num_hidden_layers = m.integer(key("block_count")) - c.num_nextn_predict_layers;
  // llama.cpp reads files whose MTP layers were left out (nextn_predict_layers set, no nextn tensors).
  if (c.num_nextn_predict_layers > 0 &&
      !file.find_tensor("blk." + std::to_string(c.num_hidden_layers) + ".nextn.eh_proj.weight")) {
    c.num_hidden_layers += c.num_nextn_predict_layers;
    c.num_nextn_predict_layers = 0;
  }
  if (const GgufValue* v = file.find(key("vocab_size"))) {
    c.vocab_size = v->as_int(m.where(key("vocab_size")));
  } else {
    c.vocab_size = static_cast<int64_t>(file.get("tokenizer.ggml.tokens")
                                            .as_array(GgufType::String, m.where("tokenizer.ggml.tokens"))
                                            .size());
  }
  c.hidden_size = m.integer(key("embedding_length"));
  c.num_attention_heads = m.integer(key("attention.head_count"));
  c.q_lora_rank = m.integer(key("attention.q_lora_rank"), 0);
  c.kv_lora_rank = m.integer(key("attention.kv_lora_rank"));
  c.qk_rope_head_dim = m.integer(key("rope.dimension_count"));
  // Files from before the MLA split give the per-head sizes as key_length/value_length.
  const int64_t key_length = m.integer(key("attention.key_length_mla"), m.integer(key("attention.key_length"), 0));
  c.qk_nope_head_dim = key_length - c.qk_rope_head_dim;
  c.v_head_dim = m.integer(key("attention.value_length_mla"), m.integer(key("attention.value_length"), 0));
  c.intermediate_size = m.integer(key("feed_forward_length"), 0);
  c.moe_intermediate_size = m.integer(key("expert_feed_forward_length"), 0);
  c.n_routed_experts = m.integer(key("expert_count"), 0);
  c.num_experts_per_tok = m.integer(key("expert_used_count"), 0);
  c.n_shared_experts = m.integer(key("expert_shared_count"), 0);
  c.n_group = m.integer(key("expert_group_count"), 1);
  c.topk_group = m.integer(key("expert_group_used_count"), c.n_group);
  c.routed_scaling_factor = m.real(key("expert_weights_scale"), 1.0);
  c.norm_topk_prob = m.boolean(key("expert_weights_norm"), false);
  c.first_k_dense_replace = m.integer(key("leading_dense_block_count"), 0);
  // llama.cpp's default for files without the key is softmax (DeepSeek-V2).
  const int64_t gating = m.integer(key("expert_gating_func"), kGatingSoftmax);
  if (gating == kGatingSigmoid) {
    c.scoring_func = ScoringFunc::Sigmoid;
    c.topk_method = TopkMethod::NoauxTc;
  } else if (gating == kGatingSoftmax) {
    c.scoring_func = ScoringFunc::Softmax;
    c.topk_method = c.n_group > 1 ? TopkMethod::GroupLimitedGreedy : TopkMethod::Greedy;
  } else {
    fail("expert_gating_func ", gating, " is not supported (1 softmax, 2 sigmoid) (", m.where(key("expert_gating_func")),
         ")");
  }
  c.rms_norm_eps = m.real(key("attention.layer_norm_rms_epsilon"), c.rms_norm_eps);
  c.rope_theta = m.real(key("rope.freq_base"), 10000.0);
  c.max_position_embeddings = m.integer(key("context_length"));
  if (const GgufValue* type = file.find(key("rope.scaling.type"))) {
    const std::string t = type->as_string(m.where(key("rope.scaling.type")));
    if (t == "yarn") {
      YarnScaling y;
      y.factor = m.real(key("rope.scaling.factor"), y.factor);
      y.original_max_position_embeddings =
          m.integer(key("rope.scaling.original_context_length"), c.max_position_embeddings);
      y.beta_fast = m.real(key("rope.scaling.yarn_beta_fast"), y.beta_fast);
      y.beta_slow = m.real(key("rope.scaling.yarn_beta_slow"), y.beta_slow);
      // llama.cpp takes mscale equal to mscale_all_dim, as DeepSeek's configs have them.
      if (const GgufValue* mul = file.find(key("rope.scaling.yarn_log_multiplier"))) {
        y.mscale_all_dim = static_cast<float>(mul->as_float(m.where(key("rope.scaling.yarn_log_multiplier")))) /
                           kYarnLogMultiplier;
        y.mscale = y.mscale_all_dim;
      }
      c.rope_scaling = y;
    } else if (t != "none") {
      fail("rope scaling '", t, "' is not supported (yarn or none) (", m.where(key("rope.scaling.type")), ")");
    }
  }
  c.bos_token_id = m.integer("tokenizer.ggml.bos_token_id", c.bos_token_id);
  c.eos_token_id = m.integer("tokenizer.ggml.eos_token_id", c.eos_token_id);
  c.tie_word_embeddings = file.find_tensor("output.weight") == nullptr;
  try {
    c.validate();
  } catch (const Error& e) {
    fail(e.what(), " (", file.path(), ")");
  }
  return c;
}

}  // namespace

// ------------------------------------------------------------------------------ loading

GgufModel::GgufModel(const std::string& path) : file_(std::make_unique<GgufFile>(path)), config_(read_config(*file_)) {}

ModelWeights GgufModel::bind_weights() {
  const GgufFile& f = *file_;
  const ModelConfig& c = config_;
  // The MTP module's embedding, head and head norm may be left out: llama.cpp then uses the main model's.
  auto lookup = [&](const std::string& name) -> const GgufTensor& {
    if (const GgufTensor* t = f.find_tensor(name)) return *t;
    static const std::vector<std::pair<std::string, std::string>> kFallbacks = {
        {".nextn.embed_tokens.weight", "token_embd.weight"},
        {".nextn.shared_head_head.weight", c.tie_word_embeddings ? "token_embd.weight" : "output.weight"},
        {".nextn.shared_head_norm.weight", "output_norm.weight"}};
    for (const auto& [suffix, main] : kFallbacks)
      if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
        return f.tensor(main);
    return f.tensor(name);
  };
  auto checked = [&](const std::string& name, const std::vector<int64_t>& ne) -> const GgufTensor& {
    const GgufTensor& t = lookup(name);
    if (t.ne != ne)
      fail("tensor shape ", ggml_shape(t.ne), " does not match the config's ", ggml_shape(ne), " (", f.path(), ": ",
           t.name, ")");
    return t;
  };
  const int64_t h = c.num_attention_heads, nope = c.qk_nope_head_dim, v = c.v_head_dim, rank = c.kv_lora_rank;
  auto split_kv_b = [&](const std::string& block) -> std::pair<Matrix, Matrix> {
    const GgufTensor& k_b = checked(block + "attn_k_b.weight", {nope, rank, h});
    const GgufTensor& v_b = checked(block + "attn_v_b.weight", {rank, v, h});
    return {Matrix{k_b.dtype, h * rank, nope, k_b.data, nullptr, 0},  // per head: [rank][nope]
            Matrix{v_b.dtype, h * v, rank, v_b.data, nullptr, 0}};    // per head: [v][rank]
  };
  // kv_b of F32, F16 or BF16 halves, joined in that dtype (the values and the arithmetic of the
  // Hugging Face checkpoint); halves of a block dtype stay split (AttentionWeights::k_b, v_b).
  auto join_kv_b = [&](const std::string& block, const WeightSlot& slot) -> Matrix {
    const auto [keys, values] = split_kv_b(block);
    if (keys.dtype != values.dtype || dtype_block_values(keys.dtype) != 1) return Matrix{};
    const DType dtype = keys.dtype;
    const size_t size = dtype_size(dtype);
    std::vector<uint8_t>& out = joined_kv_b_.emplace_back(static_cast<size_t>(slot.rows * slot.cols) * size);
    auto at = [&](int64_t row, int64_t col) { return out.data() + static_cast<size_t>(row * rank + col) * size; };
    const auto* k_b = static_cast<const uint8_t*>(keys.data);
    const auto* v_b = static_cast<const uint8_t*>(values.data);
    for (int64_t head = 0; head < h; ++head) {
      const int64_t first = head * (nope + v);
      for (int64_t col = 0; col < rank; ++col)  // key half, transposed back
        for (int64_t r = 0; r < nope; ++r)
          std::memcpy(at(first + r, col), k_b + static_cast<size_t>((head * rank + col) * nope + r) * size, size);
      for (int64_t r = 0; r < v; ++r)  // value half, as it is
        std::memcpy(at(first + nope + r, 0), v_b + static_cast<size_t>((head * v + r) * rank) * size,
                    static_cast<size_t>(rank) * size);
    }
    return Matrix{dtype, slot.rows, slot.cols, out.data(), nullptr, 0};
  };

  ModelWeights w;
  for_each_weight<ModelWeights>(c, w, [&](const WeightSlot& slot, Matrix* matrix, std::vector<float>* vector) {
    const GgufPlace place = gguf_place(slot.name);
    if (vector) {
      const GgufTensor& t = checked(place.name, {slot.rows});
      *vector = decode_to_f32(Matrix{t.dtype, 1, slot.rows, t.data, nullptr, 0});
    } else if (place.kv_b && !f.find_tensor(place.name)) {
      *matrix = join_kv_b(place.name.substr(0, place.name.size() - std::string("attn_kv_b.weight").size()), slot);
    } else if (place.expert >= 0) {
      const GgufTensor& t = checked(place.name, {slot.cols, slot.rows, c.n_routed_experts});
      const size_t expert_bytes = static_cast<size_t>(slot.rows) * dtype_row_bytes(t.dtype, slot.cols);
      *matrix = Matrix{t.dtype, slot.rows, slot.cols, t.data + static_cast<size_t>(place.expert) * expert_bytes, nullptr, 0};
    } else {
      const GgufTensor& t = checked(place.name, {slot.cols, slot.rows});
      *matrix = Matrix{t.dtype, slot.rows, slot.cols, t.data, nullptr, 0};
    }
  });
  // Layers whose kv_b stayed empty above: its halves bound as the file holds them.
  auto bind_split = [&](int64_t layer, AttentionWeights& attn) {
    if (attn.kv_b.empty()) std::tie(attn.k_b, attn.v_b) = split_kv_b("blk." + std::to_string(layer) + ".");
  };
  for (size_t i = 0; i < w.layers.size(); ++i) bind_split(static_cast<int64_t>(i), w.layers[i].attn);
  if (w.mtp) bind_split(c.num_hidden_layers, w.mtp->block.attn);
  if (c.tie_word_embeddings) w.head = w.embed;
  return w;
}

// ------------------------------------------------------------------------------ writing

namespace {

using Metadata = std::vector<std::pair<std::string, GgufValue>>;

Metadata model_metadata(const ModelConfig& c, DType dtype, const std::string& model_name) {
  auto u32 = [](int64_t v) { return GgufValue::u32(static_cast<uint32_t>(v)); };
  auto f32 = [](double v) { return GgufValue::f32(static_cast<float>(v)); };
  Metadata m = {
      {"general.architecture", GgufValue::str(kArch)},
      {"general.type", GgufValue::str("model")},
      {"general.name", GgufValue::str(model_name)},
      // llama.cpp's file types: MOSTLY_BF16 = 32, MOSTLY_Q8_0 = 7.
      {"general.file_type", GgufValue::u32(dtype == DType::Q8_0 ? 7 : 32)},
      {"general.quantization_version", GgufValue::u32(kQuantizationVersion)},
      {key("block_count"), u32(c.num_hidden_layers + c.num_nextn_predict_layers)},
      {key("context_length"), u32(c.max_position_embeddings)},
      {key("embedding_length"), u32(c.hidden_size)},
      {key("feed_forward_length"), u32(c.intermediate_size)},
      {key("attention.head_count"), u32(c.num_attention_heads)},
      {key("attention.head_count_kv"), u32(1)},  // MLA runs as MQA over the latent
      {key("rope.freq_base"), f32(c.rope_theta)},
      {key("attention.layer_norm_rms_epsilon"), f32(c.rms_norm_eps)},
      {key("expert_used_count"), u32(c.num_experts_per_tok)},
      {key("expert_gating_func"), u32(c.scoring_func == ScoringFunc::Sigmoid ? kGatingSigmoid : kGatingSoftmax)},
      {key("leading_dense_block_count"), u32(c.first_k_dense_replace)},
      {key("vocab_size"), u32(c.vocab_size)},
  };
  if (c.n_routed_experts > 0) m.emplace_back(key("expert_count"), u32(c.n_routed_experts));
  // llama.cpp limits routing to groups only when fewer groups are used than there are.
  if (c.n_group > 1 && c.topk_group < c.n_group) {
    m.emplace_back(key("expert_group_count"), u32(c.n_group));
    m.emplace_back(key("expert_group_used_count"), u32(c.topk_group));
  }
  if (c.q_lora_rank > 0) m.emplace_back(key("attention.q_lora_rank"), u32(c.q_lora_rank));
  m.emplace_back(key("attention.kv_lora_rank"), u32(c.kv_lora_rank));
  m.emplace_back(key("attention.key_length"), u32(c.kv_lora_rank + c.qk_rope_head_dim));
  m.emplace_back(key("attention.value_length"), u32(c.kv_lora_rank));
  m.emplace_back(key("attention.key_length_mla"), u32(c.qk_head_dim()));
  m.emplace_back(key("attention.value_length_mla"), u32(c.v_head_dim));
  m.emplace_back(key("expert_feed_forward_length"), u32(c.moe_intermediate_size));
  m.emplace_back(key("expert_shared_count"), u32(c.n_shared_experts));
  m.emplace_back(key("expert_weights_scale"), f32(c.routed_scaling_factor));
  if (c.norm_topk_prob) m.emplace_back(key("expert_weights_norm"), GgufValue::boolean(true));
  m.emplace_back(key("rope.dimension_count"), u32(c.qk_rope_head_dim));
  if (c.rope_scaling) {
    const YarnScaling& y = *c.rope_scaling;
    m.emplace_back(key("rope.scaling.type"), GgufValue::str("yarn"));
    m.emplace_back(key("rope.scaling.factor"), f32(y.factor));
    m.emplace_back(key("rope.scaling.original_context_length"), u32(y.original_max_position_embeddings));
    m.emplace_back(key("rope.scaling.yarn_beta_fast"), f32(y.beta_fast));
    m.emplace_back(key("rope.scaling.yarn_beta_slow"), f32(y.beta_slow));
    const bool defaults = y.mscale == 1.0 && y.mscale_all_dim == 0.0;
    if (!defaults && y.mscale != y.mscale_all_dim)
      fail("rope_scaling mscale ", y.mscale, " differs from mscale_all_dim ", y.mscale_all_dim,
           ": GGUF's deepseek2 keys hold only one of them");
    if (!defaults)
      m.emplace_back(key("rope.scaling.yarn_log_multiplier"), f32(kYarnLogMultiplier * static_cast<float>(y.mscale_all_dim)));
  }
  if (c.has_mtp()) m.emplace_back(key("nextn_predict_layers"), u32(c.num_nextn_predict_layers));
  return m;
}

// tokenizer.json (byte-level BPE) and tokenizer_config.json as llama.cpp's "gpt2" tokenizer
// with DeepSeek-V3's pre-tokenizer: every id below vocab_size gets a token ("[PADi]" and
// UNUSED where the tokenizer has none), added tokens are CONTROL when special.
void add_tokenizer_metadata(Metadata& m, const std::string& dir, const ModelConfig& c) {
  const std::string path = (fs::path(dir) / "tokenizer.json").string();
  const json tokenizer = read_json_file(path);
  const json& model = tokenizer.contains("model") ? tokenizer["model"] : json();
  if (!model.is_object() || model.value("type", "") != "BPE" || !model.contains("vocab") || !model["vocab"].is_object() ||
      !model.contains("merges") || !model["merges"].is_array())
    fail("tokenizer is not a byte-level BPE with vocab and merges (", path, ")");
  std::vector<GgufValue> tokens(static_cast<size_t>(c.vocab_size)), types(static_cast<size_t>(c.vocab_size));
  for (int64_t i = 0; i < c.vocab_size; ++i) {
    tokens[i] = GgufValue::str("[PAD" + std::to_string(i) + "]");
    types[i] = GgufValue::i32(kTokenUnused);
  }
  auto place = [&](const json& id, const std::string& text, int32_t type) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= c.vocab_size)
      fail("token id ", id.dump(), " is outside the model's vocabulary of ", c.vocab_size, " (", path, ": ", text, ")");
    tokens[id.get<size_t>()] = GgufValue::str(text);
    types[id.get<size_t>()] = GgufValue::i32(type);
  };
  for (const auto& [text, id] : model["vocab"].items()) place(id, text, kTokenNormal);
  if (tokenizer.contains("added_tokens") && tokenizer["added_tokens"].is_array())
    for (const json& a : tokenizer["added_tokens"])
      if (a.is_object() && a.contains("content") && a["content"].is_string())
        place(a.value("id", json()), a["content"].get<std::string>(),
              a.value("special", false) ? kTokenControl : kTokenUserDefined);
  std::vector<GgufValue> merges;
  for (const json& merge : model["merges"]) {
    if (merge.is_string()) merges.push_back(GgufValue::str(merge.get<std::string>()));
    else if (merge.is_array() && merge.size() == 2 && merge[0].is_string() && merge[1].is_string())
      merges.push_back(GgufValue::str(merge[0].get<std::string>() + " " + merge[1].get<std::string>()));
    else fail("merge is not \"a b\" or [a, b]: ", merge.dump(), " (", path, ")");
  }
  m.emplace_back("tokenizer.ggml.model", GgufValue::str("gpt2"));
  m.emplace_back("tokenizer.ggml.pre", GgufValue::str("deepseek-v3"));
  m.emplace_back("tokenizer.ggml.tokens", GgufValue::array(GgufType::String, std::move(tokens)));
  m.emplace_back("tokenizer.ggml.token_type", GgufValue::array(GgufType::Int32, std::move(types)));
  m.emplace_back("tokenizer.ggml.merges", GgufValue::array(GgufType::String, std::move(merges)));
  m.emplace_back("tokenizer.ggml.bos_token_id", GgufValue::u32(static_cast<uint32_t>(c.bos_token_id)));
  m.emplace_back("tokenizer.ggml.eos_token_id", GgufValue::u32(static_cast<uint32_t>(c.eos_token_id)));
  const fs::path config_path = fs::path(dir) / "tokenizer_config.json";
  if (!fs::exists(config_path)) return;
  const json config = read_json_file(config_path.string());
  if (!config.is_object()) fail("tokenizer config is not a JSON object (", config_path.string(), ")");
  if (config.contains("add_bos_token") && config["add_bos_token"].is_boolean())
    m.emplace_back("tokenizer.ggml.add_bos_token", GgufValue::boolean(config["add_bos_token"].get<bool>()));
  if (config.contains("add_eos_token") && config["add_eos_token"].is_boolean())
    m.emplace_back("tokenizer.ggml.add_eos_token", GgufValue::boolean(config["add_eos_token"].get<bool>()));
  if (config.contains("chat_template") && config["chat_template"].is_string())
    m.emplace_back("tokenizer.chat_template", GgufValue::str(config["chat_template"].get<std::string>()));
}

// A tensor of the file being written: its FP32 values until encoded.
struct PendingTensor {
  std::string name;
  std::vector<int64_t> ne;
  std::vector<float> values;
};

// llama.cpp's converter choices: 1-D tensors, norms and the router stay F32; Q8_0 needs
// rows of whole blocks and falls back to F16.
DType storage_dtype(const PendingTensor& t, DType requested) {
  auto ends_with = [&](const std::string& suffix) {
    return t.name.size() >= suffix.size() && t.name.compare(t.name.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  if (t.ne.size() == 1 || ends_with("_norm.weight") || ends_with("ffn_gate_inp.weight")) return DType::F32;
  if (requested == DType::Q8_0 && t.ne[0] % dtype_block_values(DType::Q8_0) != 0) return DType::F16;
  return requested;
}

}  // namespace

void write_gguf_model(const std::string& path, const ModelConfig& c, DType dtype, const std::string& model_name,
                      const std::string& tokenizer_dir, const std::function<void(const WeightSlot&, float*)>& fill) {
  if (dtype != DType::BF16 && dtype != DType::Q8_0) fail("GGUF weights must be BF16 or Q8_0, not ", dtype_name(dtype));
  Metadata metadata = model_metadata(c, dtype, model_name);
  if (fs::exists(fs::path(tokenizer_dir) / "tokenizer.json")) add_tokenizer_metadata(metadata, tokenizer_dir, c);

  std::vector<PendingTensor> pending;
  std::map<std::string, size_t> stacked;  // expert tensor name -> index in pending
  std::vector<float> values;
  const int64_t h = c.num_attention_heads, nope = c.qk_nope_head_dim, v = c.v_head_dim, rank = c.kv_lora_rank;
  for (const WeightSlot& slot : checkpoint_tensors(c)) {
    const int64_t count = slot.rows * std::max<int64_t>(slot.cols, 1);
    values.resize(static_cast<size_t>(count));
    fill(slot, values.data());
    const GgufPlace place = gguf_place(slot.name);
    if (place.kv_b) {  // per head: key half transposed to [rank][nope], value half as [v][rank]
      const std::string block = place.name.substr(0, place.name.size() - std::string("attn_kv_b.weight").size());
      PendingTensor k_b{block + "attn_k_b.weight", {nope, rank, h}, std::vector<float>(static_cast<size_t>(h * rank * nope))};
      PendingTensor v_b{block + "attn_v_b.weight", {rank, v, h}, {}};
      for (int64_t head = 0; head < h; ++head) {
        const float* rows = values.data() + head * (nope + v) * rank;
        for (int64_t r = 0; r < nope; ++r)
          for (int64_t col = 0; col < rank; ++col) k_b.values[static_cast<size_t>((head * rank + col) * nope + r)] = rows[r * rank + col];
        v_b.values.insert(v_b.values.end(), rows + nope * rank, rows + (nope + v) * rank);
      }
      pending.push_back(std::move(k_b));
      pending.push_back(std::move(v_b));
    } else if (place.expert >= 0) {
      auto [it, fresh] = stacked.emplace(place.name, pending.size());
      if (fresh)
        pending.push_back({place.name, {slot.cols, slot.rows, c.n_routed_experts},
                           std::vector<float>(static_cast<size_t>(count * c.n_routed_experts))});
      std::copy(values.begin(), values.end(), pending[it->second].values.begin() + place.expert * count);
    } else {
      pending.push_back({place.name, slot.cols ? std::vector<int64_t>{slot.cols, slot.rows} : std::vector<int64_t>{slot.rows},
                         values});
    }
  }

  std::vector<std::vector<uint8_t>> encoded;
  std::vector<GgufTensorToWrite> tensors;
  for (PendingTensor& t : pending) {
    const DType stored = storage_dtype(t, dtype);
    encoded.push_back(encode_values(t.values.data(), t.values.size(), stored));
    std::vector<float>().swap(t.values);  // keep one FP32 copy of the model at most
    tensors.push_back({t.name, stored, t.ne, encoded.back().data()});
  }
  write_gguf(path, metadata, tensors);
}

}  // namespace dsv3
