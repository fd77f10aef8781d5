#include "train/documents.h"

#include "base/error.h"

namespace dsv3 {

namespace {

// The nearest UTF-8 character boundary at or before `pos`.
size_t char_boundary(std::string_view text, size_t pos) {
  while (pos > 0 && pos < text.size() && (static_cast<unsigned char>(text[pos]) & 0xc0) == 0x80) --pos;
  return pos;
}

void append(std::vector<int32_t>& out, const std::vector<int32_t>& ids) { out.insert(out.end(), ids.begin(), ids.end()); }

}  // namespace

DocumentEncoder::DocumentEncoder(Tokenizer& tokenizer, double fim_rate, uint64_t seed)
    : tokenizer_(tokenizer), fim_rate_(fim_rate), rng_(seed) {
  if (fim_rate < 0 || fim_rate > 1) fail("--fim-rate must be between 0 and 1, got ", fim_rate);
  if (fim_rate == 0) return;
  auto need = [&](const char* token) {
    const auto id = tokenizer.token_id(token);
    if (!id) fail("fill-in-the-middle needs the token ", token, ", which the tokenizer lacks (--fim-rate)");
    return *id;
  };
  fim_begin_ = need("<｜fim▁begin｜>");
  fim_hole_ = need("<｜fim▁hole｜>");
  fim_end_ = need("<｜fim▁end｜>");
  if (!tokenizer.eos_id()) fail("fill-in-the-middle needs an EOS token (--fim-rate)");
}

void DocumentEncoder::encode(std::string_view text, std::vector<int32_t>& out) {
  const bool bos = tokenizer_.add_bos_token();
  // Draw for every document (whatever the rate) so that the data order of a run does not
  // depend on which documents happened to be rearranged before.
  const double draw = std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
  size_t a = std::uniform_int_distribution<size_t>(0, text.size())(rng_);
  size_t b = std::uniform_int_distribution<size_t>(0, text.size())(rng_);
  if (draw >= fim_rate_ || fim_rate_ == 0) {
    append(out, tokenizer_.encode(text, bos));
  } else {
    if (a > b) std::swap(a, b);
    a = char_boundary(text, a), b = char_boundary(text, b);
    if (bos) out.push_back(*tokenizer_.bos_id());
    out.push_back(fim_begin_);
    append(out, tokenizer_.encode(text.substr(0, a), false));
    out.push_back(fim_hole_);
    append(out, tokenizer_.encode(text.substr(b), false));
    out.push_back(fim_end_);
    append(out, tokenizer_.encode(text.substr(a, b - a), false));
  }
  if (tokenizer_.eos_id()) out.push_back(*tokenizer_.eos_id());
}

}  // namespace dsv3
