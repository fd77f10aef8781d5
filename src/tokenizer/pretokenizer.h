// The pre-tokenizer of a Hugging Face tokenizer.json: splits text into pieces that BPE
// then encodes one by one. Supported, as DeepSeek-V3 uses them: a Sequence of Split
// rules (regex or literal pattern, behavior Isolated, not inverted) followed by
// ByteLevel (add_prefix_space false; use_regex true adds the GPT-2 split rule). Anything
// else is refused by name rather than approximated.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/regex.h"

namespace dsv3 {

class PreTokenizer {
 public:
  // `where` names the file for error messages.
  static PreTokenizer from_json(const nlohmann::json& j, const std::string& where);
  // DeepSeek-V3's own rules (digits in runs of up to 3, CJK/kana runs, then words,
  // punctuation and whitespace), used for the tokenizers dsv3 trains.
  static PreTokenizer deepseek_v3();
  nlohmann::json to_json() const;

  // Appends the pieces of text, in order; together they cover text exactly.
  void split(std::string_view text, std::vector<std::string_view>& pieces);

 private:
  struct Rule {
    Regex regex;
    nlohmann::json json;  // as written in tokenizer.json
  };
  std::vector<Rule> rules_;
  nlohmann::json byte_level_json_;
  std::vector<std::string_view> current_, next_;  // reused between calls
};

}  // namespace dsv3
