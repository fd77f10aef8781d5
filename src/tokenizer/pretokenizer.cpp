#include "tokenizer/pretokenizer.h"

#include "base/error.h"

namespace dsv3 {

using nlohmann::json;

namespace {

// The split rule that ByteLevel applies when use_regex is true (GPT-2's).
constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

std::string string_field(const json& j, const char* key, const std::string& where) {
  if (!j.contains(key) || !j[key].is_string()) fail("pre_tokenizer step has no string field ", key, " (", where, ")");
  return j[key].get<std::string>();
}

}  // namespace

PreTokenizer PreTokenizer::from_json(const json& j, const std::string& where) {
  if (!j.is_object()) fail("pre_tokenizer must be an object (", where, ")");
  std::vector<json> steps;
  const std::string type = string_field(j, "type", where);
  if (type == "Sequence") {
    if (!j.contains("pretokenizers") || !j["pretokenizers"].is_array())
      fail("pre_tokenizer Sequence has no pretokenizers array (", where, ")");
    for (const auto& step : j["pretokenizers"]) steps.push_back(step);
  } else {
    steps.push_back(j);
  }

  PreTokenizer p;
  bool seen_byte_level = false;
  for (const json& step : steps) {
    if (!step.is_object()) fail("pre_tokenizer step must be an object (", where, ")");
    const std::string step_type = string_field(step, "type", where);
    if (seen_byte_level) fail("pre_tokenizer step ", step_type, " after ByteLevel is not supported (", where, ")");
    if (step_type == "Split") {
      const std::string behavior = string_field(step, "behavior", where);
      if (behavior != "Isolated") fail("pre_tokenizer Split behavior ", behavior, " is not supported (", where, ")");
      if (step.value("invert", false)) fail("pre_tokenizer Split with invert true is not supported (", where, ")");
      if (!step.contains("pattern") || !step["pattern"].is_object())
        fail("pre_tokenizer Split has no pattern object (", where, ")");
      const json& pattern = step["pattern"];
      if (pattern.contains("Regex") && pattern["Regex"].is_string()) {
        p.rules_.push_back({Regex(pattern["Regex"].get<std::string>(), false, where), step});
      } else if (pattern.contains("String") && pattern["String"].is_string()) {
        p.rules_.push_back({Regex(pattern["String"].get<std::string>(), true, where), step});
      } else {
        fail("pre_tokenizer Split pattern must hold a Regex or String (", where, ")");
      }
    } else if (step_type == "ByteLevel") {
      if (step.value("add_prefix_space", false))
        fail("pre_tokenizer ByteLevel with add_prefix_space true is not supported (", where, ")");
      if (step.value("use_regex", true)) p.rules_.push_back({Regex(kGpt2Pattern, false, where), json()});
      p.byte_level_json_ = step;
      seen_byte_level = true;
    } else {
      fail("pre_tokenizer type ", step_type, " is not supported (", where, "; supported: Sequence, Split, ByteLevel)");
    }
  }
  if (!seen_byte_level) fail("pre_tokenizer has no ByteLevel step; only byte-level BPE is supported (", where, ")");
  return p;
}

PreTokenizer PreTokenizer::deepseek_v3() {
  auto split = [](const char* regex) {
    return json{{"type", "Split"}, {"pattern", {{"Regex", regex}}}, {"behavior", "Isolated"}, {"invert", false}};
  };
  const json j = {
      {"type", "Sequence"},
      {"pretokenizers",
       {split(R"(\p{N}{1,3})"),
        split("[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+"),
        split("[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+|"
              " ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"),
        {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}}}}};
  return from_json(j, "DeepSeek-V3 pre-tokenizer");
}

json PreTokenizer::to_json() const {
  json steps = json::array();
  for (const Rule& rule : rules_)
    if (!rule.json.is_null()) steps.push_back(rule.json);
  steps.push_back(byte_level_json_);
  return {{"type", "Sequence"}, {"pretokenizers", steps}};
}

void PreTokenizer::split(std::string_view text, std::vector<std::string_view>& pieces) {
  // Each rule re-splits every piece of the previous one: matches and the gaps between
  // them become pieces of their own ("Isolated").
  std::vector<std::string_view>& current = current_;
  std::vector<std::string_view>& next = next_;
  current.assign(1, text);
  for (Rule& rule : rules_) {
    next.clear();
    for (std::string_view piece : current) {
      size_t emitted = 0, search = 0, begin = 0, end = 0;
      while (search < piece.size() && rule.regex.find(piece, search, begin, end)) {
        if (end == begin) {  // an empty match splits nothing
          search = begin + 1;
          continue;
        }
        if (begin > emitted) next.push_back(piece.substr(emitted, begin - emitted));
        next.push_back(piece.substr(begin, end - begin));
        emitted = search = end;
      }
      if (emitted < piece.size()) next.push_back(piece.substr(emitted));
    }
    current.swap(next);
  }
  pieces.insert(pieces.end(), current.begin(), current.end());
}

}  // namespace dsv3
