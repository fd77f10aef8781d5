// Training documents -> tokens: BOS (when the tokenizer adds it), the text, EOS; with
// probability fim_rate a document is rearranged for fill-in-the-middle in the report's
// Prefix-Suffix-Middle order:
//   <｜fim▁begin｜>prefix<｜fim▁hole｜>suffix<｜fim▁end｜>middle<｜end▁of▁sentence｜>
// with the two cut points drawn uniformly (on UTF-8 character boundaries).
#pragma once

#include <cstdint>
#include <random>
#include <string_view>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace dsv3 {

class DocumentEncoder {
 public:
  // Throws Error if fim_rate > 0 and the tokenizer lacks the FIM tokens or EOS.
  DocumentEncoder(Tokenizer& tokenizer, double fim_rate, uint64_t seed);

  // Appends the document's tokens.
  void encode(std::string_view text, std::vector<int32_t>& out);

 private:
  Tokenizer& tokenizer_;
  double fim_rate_;
  std::mt19937_64 rng_;
  int32_t fim_begin_ = -1, fim_hole_ = -1, fim_end_ = -1;
};

}  // namespace dsv3
