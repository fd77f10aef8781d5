#include "infer/text_stream.h"

#include <algorithm>

#include "base/error.h"

namespace dsv3 {

TextStream::TextStream(const Tokenizer& tokenizer, std::vector<std::string> stop_strings)
    : tokenizer_(tokenizer), stops_(std::move(stop_strings)) {
  for (const std::string& stop : stops_)
    if (stop.empty()) fail("a stop string must not be empty");
}

std::string TextStream::push(int32_t token) {
  // An id of the model's padded vocabulary has no text: it prints nothing, as in llama.cpp.
  if (stopped_ || token == tokenizer_.eos_id() || !tokenizer_.has_token(token)) return {};
  token_bytes_.clear();
  tokenizer_.append_token_bytes(token, token_bytes_);
  held_ += utf8_.push(token_bytes_);
  return release();
}

// Shows held_ up to the first stop string, or up to the longest suffix that a stop string
// begins with.
std::string TextStream::release() {
  size_t first_stop = std::string::npos;
  for (const std::string& stop : stops_) first_stop = std::min(first_stop, held_.find(stop));
  if (first_stop != std::string::npos) {
    stopped_ = true;
    std::string shown = held_.substr(0, first_stop);
    held_.clear();
    return shown;
  }
  size_t keep = 0;
  for (const std::string& stop : stops_)
    for (size_t n = std::min(stop.size() - 1, held_.size()); n > keep; --n)
      if (held_.compare(held_.size() - n, n, stop, 0, n) == 0) {
        keep = n;
        break;
      }
  std::string shown = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return shown;
}

std::string TextStream::finish() {
  if (stopped_) return {};
  held_ += utf8_.flush();
  std::string rest;
  rest.swap(held_);
  return rest;
}

}  // namespace dsv3
