// Trains a byte-level BPE tokenizer with DeepSeek-V3's pre-tokenizer and special tokens,
// and writes it as Hugging Face tokenizer.json + tokenizer_config.json.
//
// Training: the text is pre-tokenized into words (in parallel, fixed chunks), each word
// starts as its byte-level symbols, and the most frequent adjacent pair is merged into a
// new token until the vocabulary is full. Ties between equally frequent pairs go to the
// pair whose (left id, right id) is smallest, so results are deterministic.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "base/thread_pool.h"

namespace dsv3 {

// DeepSeek-V3's special tokens, ids 0.. in this order: BOS, EOS, pad, FIM hole/begin/end, User, Assistant.
const std::vector<std::string>& deepseek_special_tokens();

struct BpeTrainerOptions {
  int64_t vocab_size = 8192;   // specials + 256 byte symbols + merges
  int64_t min_frequency = 2;   // stop when the best pair is rarer than this
};

struct BpeTrainingResult {
  std::vector<std::pair<std::string, std::string>> merges;  // byte-level symbol strings, in rank order
  int64_t words = 0;        // distinct pre-tokenized words
  bool stopped_early = false;
};

// Trains on in-memory texts. `progress` is called now and then with (merges done, target).
BpeTrainingResult train_bpe(const std::vector<std::string>& texts, const BpeTrainerOptions& options, ThreadPool& pool,
                            const std::function<void(int64_t, int64_t)>& progress = {});

// Writes DIR/tokenizer.json and DIR/tokenizer_config.json (atomically; DIR is created).
void write_tokenizer_files(const std::string& dir, const BpeTrainingResult& result);

}  // namespace dsv3
