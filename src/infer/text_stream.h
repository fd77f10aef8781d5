// Generated tokens to text for display: each token's bytes go through the UTF-8 holdback
// (never split a character), then through the stop-string holdback (never show text that
// may turn out to begin a stop string; stop at the first one and show nothing from it on).
// The end-of-sequence token is not text.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "infer/utf8_stream.h"
#include "tokenizer/tokenizer.h"

namespace dsv3 {

class TextStream {
 public:
  TextStream(const Tokenizer& tokenizer, std::vector<std::string> stop_strings);

  // The text that can be shown now that `token` came.
  std::string push(int32_t token);
  // True once a stop string appeared: generation should end (push returned the text before it).
  bool stopped() const { return stopped_; }
  // What is still held back, at the end of generation (nothing after a stop).
  std::string finish();

 private:
  std::string release();

  const Tokenizer& tokenizer_;
  std::vector<std::string> stops_;
  Utf8Stream utf8_;
  std::string token_bytes_, held_;
  bool stopped_ = false;
};

}  // namespace dsv3
