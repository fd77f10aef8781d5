// Added tokens (special tokens like <｜begin▁of▁sentence｜>, and others listed in
// tokenizer.json's added_tokens) are found in the text before pre-tokenization and become
// one id each, as in the Hugging Face library: leftmost-longest matches, first among the
// tokens marked normalized: false, then among the normalized ones in the text between.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace dsv3 {

struct AddedToken {
  int32_t id;
  std::string content;
  bool special;
  bool normalized;
};

class AddedTokenMatcher {
 public:
  explicit AddedTokenMatcher(std::vector<AddedToken> tokens);

  // A span of the text: either plain text (id < 0) or one added token.
  struct Segment {
    std::string_view text;
    int32_t id;
  };
  // Appends the segments of `text` in order; plain segments are never empty.
  void split(std::string_view text, std::vector<Segment>& out) const;

  const std::vector<AddedToken>& tokens() const { return tokens_; }
  const AddedToken* find_by_id(int32_t id) const;
  const AddedToken* find_by_content(std::string_view content) const;

 private:
  // Leftmost-longest matching among one group of tokens (all with the same `normalized`).
  struct Group {
    std::vector<const AddedToken*> by_first_byte[256];  // longest first
    bool any = false;
    // First match at or after `from`: returns false if none.
    bool find(std::string_view text, size_t from, size_t& begin, const AddedToken*& token) const;
  };
  void split_group(const Group& group, std::string_view text, std::vector<Segment>& out) const;

  std::vector<AddedToken> tokens_;
  Group raw_, normalized_;
};

}  // namespace dsv3
