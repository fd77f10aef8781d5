#include "tokenizer/tokenizer.h"

#include <filesystem>

#include "base/error.h"
#include "formats/json_file.h"
#include "tokenizer/byte_level.h"

namespace dsv3 {

using nlohmann::json;

namespace {

std::vector<AddedToken> read_added_tokens(const json& j, const std::string& where) {
  std::vector<AddedToken> tokens;
  if (!j.contains("added_tokens") || j["added_tokens"].is_null()) return tokens;
  if (!j["added_tokens"].is_array()) fail("added_tokens must be an array (", where, ")");
  for (const json& t : j["added_tokens"]) {
    if (!t.is_object() || !t.contains("id") || !t["id"].is_number_integer() || !t.contains("content") ||
        !t["content"].is_string())
      fail("added token needs an integer id and a string content (", where, ": added_tokens)");
    const std::string content = t["content"].get<std::string>();
    for (const char* flag : {"lstrip", "rstrip", "single_word"})
      if (t.value(flag, false))
        fail("added token '", content, "' with ", flag, " true is not supported (", where, ": added_tokens)");
    const int64_t id = t["id"].get<int64_t>();
    if (id < 0 || id >= (1 << 30)) fail("added token '", content, "' has an invalid id ", id, " (", where, ")");
    tokens.push_back({static_cast<int32_t>(id), content, t.value("special", false), t.value("normalized", false)});
  }
  return tokens;
}

void check_supported(const json& j, const std::string& where) {
  if (j.contains("normalizer") && !j["normalizer"].is_null()) {
    const json& n = j["normalizer"];
    const bool empty_sequence = n.is_object() && n.value("type", "") == "Sequence" && n.contains("normalizers") &&
                                n["normalizers"].is_array() && n["normalizers"].empty();
    if (!empty_sequence)
      fail("normalizer ", n.is_object() ? n.value("type", std::string("?")) : n.dump(), " is not supported (", where,
           ")");
  }
  if (j.contains("decoder") && !j["decoder"].is_null()) {
    const json& d = j["decoder"];
    if (!d.is_object() || d.value("type", "") != "ByteLevel")
      fail("decoder ", d.is_object() ? d.value("type", std::string("?")) : d.dump(), " is not supported (", where,
           "; only ByteLevel)");
  }
}

// A token in tokenizer_config.json is a string or {"content": ...}.
std::string config_token(const json& config, const char* key) {
  if (!config.contains(key)) return "";
  const json& t = config[key];
  if (t.is_string()) return t.get<std::string>();
  if (t.is_object() && t.contains("content") && t["content"].is_string()) return t["content"].get<std::string>();
  return "";
}

}  // namespace

Tokenizer Tokenizer::load(const std::string& dir) {
  namespace fs = std::filesystem;
  const std::string path = (fs::path(dir) / "tokenizer.json").string();
  const json j = read_json_file(path);
  if (!j.is_object()) fail("tokenizer file is not a JSON object (", path, ")");
  check_supported(j, path);
  if (!j.contains("model")) fail("tokenizer has no model (", path, ")");
  if (!j.contains("pre_tokenizer")) fail("tokenizer has no pre_tokenizer (", path, ")");
  Tokenizer t(BpeModel::from_json(j["model"], path), PreTokenizer::from_json(j["pre_tokenizer"], path),
              AddedTokenMatcher(read_added_tokens(j, path)));

  t.vocab_size_ = t.model_.id_limit();
  for (const AddedToken& a : t.added_.tokens()) t.vocab_size_ = std::max(t.vocab_size_, a.id + 1);
  t.added_by_id_.assign(static_cast<size_t>(t.vocab_size_), nullptr);
  for (const AddedToken& a : t.added_.tokens()) t.added_by_id_[a.id] = &a;

  const std::string config_path = (fs::path(dir) / "tokenizer_config.json").string();
  if (fs::exists(config_path)) {
    const json config = read_json_file(config_path);
    if (!config.is_object()) fail("tokenizer config is not a JSON object (", config_path, ")");
    t.add_bos_token_ = config.value("add_bos_token", false);
    t.bos_token_ = config_token(config, "bos_token");
    t.eos_token_ = config_token(config, "eos_token");
    if (config.contains("chat_template") && config["chat_template"].is_string())
      t.chat_template_ = config["chat_template"].get<std::string>();
    if (!t.bos_token_.empty()) t.bos_id_ = t.token_id(t.bos_token_);
    if (!t.eos_token_.empty()) t.eos_id_ = t.token_id(t.eos_token_);
    if (t.add_bos_token_ && !t.bos_id_)
      fail("add_bos_token is set but bos_token '", t.bos_token_, "' is not a token (", config_path, ")");
  }
  return t;
}

std::optional<int32_t> Tokenizer::token_id(std::string_view content) const {
  if (const AddedToken* a = added_.find_by_content(content)) return a->id;
  return std::nullopt;
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_bos) {
  std::vector<int32_t> ids;
  if (add_bos && bos_id_) ids.push_back(*bos_id_);
  segments_.clear();
  added_.split(text, segments_);
  for (const auto& segment : segments_) {
    if (segment.id >= 0) {
      ids.push_back(segment.id);
      continue;
    }
    pieces_.clear();
    pre_.split(segment.text, pieces_);
    for (std::string_view piece : pieces_) model_.encode(piece, ids);
  }
  return ids;
}

void Tokenizer::append_token_bytes(int32_t id, std::string& out) const {
  if (id >= 0 && id < vocab_size_ && added_by_id_[id]) {
    out += added_by_id_[id]->content;
    return;
  }
  const std::string* symbols = model_.token(id);
  if (!symbols) fail("token id ", id, " is not in the vocabulary of ", vocab_size_, " tokens");
  if (!byte_level_to_bytes(*symbols, out)) fail("token ", id, " '", *symbols, "' is not made of byte-level symbols");
}

bool Tokenizer::has_token(int32_t id) const {
  return (id >= 0 && id < vocab_size_ && added_by_id_[id]) || model_.token(id) != nullptr;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string out;
  for (int32_t id : ids) append_token_bytes(id, out);
  return out;
}

}  // namespace dsv3
