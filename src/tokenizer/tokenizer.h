// A Hugging Face byte-level BPE tokenizer (tokenizer.json + tokenizer_config.json) as
// DeepSeek-V3 uses it: added tokens matched first, then the pre-tokenizer's pieces encoded
// by BPE; decoding maps ids back to the exact bytes. BOS is prepended by dsv3 itself when
// tokenizer_config.json says add_bos_token.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/added_tokens.h"
#include "tokenizer/bpe.h"
#include "tokenizer/pretokenizer.h"

namespace dsv3 {

class Tokenizer {
 public:
  // Loads DIR/tokenizer.json and, if present, DIR/tokenizer_config.json.
  static Tokenizer load(const std::string& dir);

  // Not thread-safe (caches and regex state); give each thread its own copy.
  std::vector<int32_t> encode(std::string_view text, bool add_bos);
  // The bytes the ids stand for; throws Error for an id outside the vocabulary.
  std::string decode(const std::vector<int32_t>& ids) const;
  // Appends the bytes of one token.
  void append_token_bytes(int32_t id, std::string& out) const;
  // Whether the id has text: a model's vocabulary may be padded past its tokenizer's
  // (DeepSeek-V3: 129280 logits, 128815 tokens).
  bool has_token(int32_t id) const;

  bool add_bos_token() const { return add_bos_token_; }
  std::optional<int32_t> bos_id() const { return bos_id_; }
  std::optional<int32_t> eos_id() const { return eos_id_; }
  const std::string& bos_token() const { return bos_token_; }
  const std::string& chat_template() const { return chat_template_; }
  std::optional<int32_t> token_id(std::string_view added_token_content) const;
  int32_t vocab_size() const { return vocab_size_; }

 private:
  Tokenizer(BpeModel model, PreTokenizer pre, AddedTokenMatcher added)
      : model_(std::move(model)), pre_(std::move(pre)), added_(std::move(added)) {}

  BpeModel model_;
  PreTokenizer pre_;
  AddedTokenMatcher added_;
  std::vector<const AddedToken*> added_by_id_;
  int32_t vocab_size_ = 0;
  bool add_bos_token_ = false;
  std::string bos_token_, eos_token_, chat_template_;
  std::optional<int32_t> bos_id_, eos_id_;
  std::vector<AddedTokenMatcher::Segment> segments_;  // scratch
  std::vector<std::string_view> pieces_;               // scratch
};

}  // namespace dsv3
