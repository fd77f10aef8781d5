#include "tokenizer/bpe_trainer.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <queue>
#include <unordered_map>
#include <unordered_set>

#include "base/atomic_file.h"
#include "base/error.h"
#include "tokenizer/added_tokens.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/deepseek_chat_template.h"
#include "tokenizer/pretokenizer.h"

namespace dsv3 {

using nlohmann::ordered_json;

const std::vector<std::string>& deepseek_special_tokens() {
  static const std::vector<std::string> tokens = {
      "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜▁pad▁｜>", "<｜fim▁hole｜>",
      "<｜fim▁begin｜>",         "<｜fim▁end｜>",         "<｜User｜>",  "<｜Assistant｜>"};
  return tokens;
}

namespace {

constexpr size_t kChunkBytes = 1 << 20;  // pre-tokenization work unit (fixed: results must not depend on threads)

using WordCounts = std::unordered_map<std::string, int64_t>;

// Splits the texts into ~1 MB chunks ending at newlines.
std::vector<std::string_view> make_chunks(const std::vector<std::string>& texts) {
  std::vector<std::string_view> chunks;
  for (const std::string& text : texts) {
    std::string_view rest = text;
    while (!rest.empty()) {
      const size_t newline = rest.size() <= kChunkBytes ? std::string_view::npos : rest.find('\n', kChunkBytes);
      const size_t end = newline == std::string_view::npos ? rest.size() : newline + 1;
      chunks.push_back(rest.substr(0, end));
      rest.remove_prefix(end);
    }
  }
  return chunks;
}

WordCounts count_words(const std::vector<std::string>& texts, ThreadPool& pool) {
  const std::vector<std::string_view> chunks = make_chunks(texts);
  std::vector<WordCounts> partial(chunks.size());
  const PreTokenizer prototype = PreTokenizer::deepseek_v3();
  std::vector<AddedToken> specials;
  for (const std::string& s : deepseek_special_tokens()) specials.push_back({int32_t(specials.size()), s, true, false});
  const AddedTokenMatcher matcher(specials);
  pool.parallel_for(chunks.size(), [&](size_t i) {
    PreTokenizer pre = prototype;  // its own regex state
    std::vector<AddedTokenMatcher::Segment> segments;
    std::vector<std::string_view> pieces;
    matcher.split(chunks[i], segments);
    for (const auto& segment : segments) {
      if (segment.id >= 0) continue;  // special-token strings in the data are not learned from
      pieces.clear();
      pre.split(segment.text, pieces);
      for (std::string_view piece : pieces) ++partial[i][std::string(piece)];
    }
  });
  WordCounts total;
  for (WordCounts& counts : partial)
    for (auto& [word, n] : counts) total[word] += n;
  return total;
}

uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }

struct Word {
  std::vector<int32_t> symbols;
  int64_t count;
};

// Adds `sign` * count for every adjacent pair of the word.
void count_pairs(const Word& w, int64_t sign, std::unordered_map<uint64_t, int64_t>& pair_counts) {
  for (size_t i = 0; i + 1 < w.symbols.size(); ++i) pair_counts[pair_key(w.symbols[i], w.symbols[i + 1])] += sign * w.count;
}

}  // namespace

BpeTrainingResult train_bpe(const std::vector<std::string>& texts, const BpeTrainerOptions& options, ThreadPool& pool,
                            const std::function<void(int64_t, int64_t)>& progress) {
  const int64_t base = static_cast<int64_t>(deepseek_special_tokens().size()) + 256;
  if (options.vocab_size < base)
    fail("vocabulary size ", options.vocab_size, " is below the ", base, " special and byte tokens (--vocab-size)");
  const int64_t target = options.vocab_size - base;

  // Distinct words in sorted order, as byte ids (symbol id = byte value; merges get 256, 257, ...).
  WordCounts counts = count_words(texts, pool);
  std::vector<std::pair<std::string, int64_t>> sorted(counts.begin(), counts.end());
  counts.clear();
  std::sort(sorted.begin(), sorted.end());
  std::vector<Word> words;
  words.reserve(sorted.size());
  for (const auto& [text, n] : sorted) {
    Word w{{}, n};
    for (unsigned char b : text) w.symbols.push_back(b);
    words.push_back(std::move(w));
  }

  std::unordered_map<uint64_t, int64_t> pair_counts;
  std::unordered_map<uint64_t, std::vector<int32_t>> pair_words;  // words that held the pair when it was counted
  for (size_t i = 0; i < words.size(); ++i) {
    count_pairs(words[i], +1, pair_counts);
    for (size_t j = 0; j + 1 < words[i].symbols.size(); ++j)
      pair_words[pair_key(words[i].symbols[j], words[i].symbols[j + 1])].push_back(static_cast<int32_t>(i));
  }

  // Max-heap on (count, smaller pair first); entries go stale and are re-checked when popped.
  using Entry = std::pair<int64_t, uint64_t>;
  auto lower = [](const Entry& a, const Entry& b) { return a.first != b.first ? a.first < b.first : a.second > b.second; };
  std::priority_queue<Entry, std::vector<Entry>, decltype(lower)> queue(lower);
  for (const auto& [pair, n] : pair_counts) queue.push({n, pair});

  std::vector<std::string> symbol_text(256);
  for (int b = 0; b < 256; ++b) symbol_text[b] = byte_level_symbols()[b];
  BpeTrainingResult result;
  result.words = static_cast<int64_t>(words.size());
  while (static_cast<int64_t>(result.merges.size()) < target) {
    if (queue.empty()) {
      result.stopped_early = true;
      break;
    }
    const auto [queued_count, pair] = queue.top();
    queue.pop();
    const int64_t count = pair_counts[pair];
    if (count != queued_count) {  // stale: requeue with the current count
      if (count > 0) queue.push({count, pair});
      continue;
    }
    if (count < options.min_frequency) {
      result.stopped_early = true;
      break;
    }
    const int32_t left = static_cast<int32_t>(pair >> 32), right = static_cast<int32_t>(pair & 0xffffffffu);
    const int32_t merged = static_cast<int32_t>(symbol_text.size());
    result.merges.emplace_back(symbol_text[left], symbol_text[right]);
    symbol_text.push_back(symbol_text[left] + symbol_text[right]);

    std::vector<int32_t> affected = std::move(pair_words[pair]);
    pair_words.erase(pair);
    std::sort(affected.begin(), affected.end());
    affected.erase(std::unique(affected.begin(), affected.end()), affected.end());
    std::unordered_set<uint64_t> touched;
    for (int32_t wi : affected) {
      Word& w = words[wi];
      bool present = false;
      for (size_t j = 0; j + 1 < w.symbols.size() && !present; ++j) present = w.symbols[j] == left && w.symbols[j + 1] == right;
      if (!present) continue;
      count_pairs(w, -1, pair_counts);
      std::vector<int32_t> out;
      out.reserve(w.symbols.size());
      for (size_t j = 0; j < w.symbols.size(); ++j) {
        if (j + 1 < w.symbols.size() && w.symbols[j] == left && w.symbols[j + 1] == right) {
          out.push_back(merged);
          ++j;
        } else {
          out.push_back(w.symbols[j]);
        }
      }
      w.symbols = std::move(out);
      count_pairs(w, +1, pair_counts);
      for (size_t j = 0; j + 1 < w.symbols.size(); ++j) {
        const uint64_t p = pair_key(w.symbols[j], w.symbols[j + 1]);
        touched.insert(p);
        if (w.symbols[j] == merged || w.symbols[j + 1] == merged) pair_words[p].push_back(wi);
      }
    }
    pair_counts.erase(pair);
    for (uint64_t p : touched) {
      const int64_t n = pair_counts[p];
      if (n > 0) queue.push({n, p});
    }
    if (progress && result.merges.size() % 1000 == 0) progress(static_cast<int64_t>(result.merges.size()), target);
  }
  return result;
}

void write_tokenizer_files(const std::string& dir, const BpeTrainingResult& result) {
  namespace fs = std::filesystem;
  fs::create_directories(dir);
  const auto& specials = deepseek_special_tokens();

  ordered_json vocab = ordered_json::object();
  ordered_json added = ordered_json::array();
  int64_t id = 0;
  for (const std::string& s : specials) {
    added.push_back({{"id", id}, {"content", s}, {"single_word", false}, {"lstrip", false}, {"rstrip", false},
                     {"normalized", false}, {"special", true}});
    vocab[s] = id++;
  }
  for (const std::string& s : byte_level_symbols()) vocab[s] = id++;
  ordered_json merges = ordered_json::array();
  for (const auto& [left, right] : result.merges) {
    vocab[left + right] = id++;
    merges.push_back(left + " " + right);
  }

  const nlohmann::json pre = PreTokenizer::deepseek_v3().to_json();
  ordered_json tokenizer = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added},
      {"normalizer", {{"type", "Sequence"}, {"normalizers", ordered_json::array()}}},
      {"pre_tokenizer", ordered_json::parse(pre.dump())},
      {"post_processor", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", false}, {"use_regex", true}}},
      {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}},
      {"model",
       {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr}, {"fuse_unk", false}, {"byte_fallback", false}, {"vocab", vocab},
        {"merges", merges}}}};

  auto token_entry = [](const std::string& content) {
    return ordered_json{{"__type", "AddedToken"}, {"content", content}, {"lstrip", false},
                        {"normalized", true},     {"rstrip", false},    {"single_word", false}};
  };
  ordered_json config = {{"add_bos_token", true},
                         {"add_eos_token", false},
                         {"bos_token", token_entry(specials[0])},
                         {"clean_up_tokenization_spaces", false},
                         {"eos_token", token_entry(specials[1])},
                         {"legacy", true},
                         {"model_max_length", 131072},
                         {"pad_token", token_entry(specials[1])},
                         {"sp_model_kwargs", ordered_json::object()},
                         {"unk_token", nullptr},
                         {"tokenizer_class", "LlamaTokenizerFast"},
                         {"chat_template", kDeepSeekV3ChatTemplate}};

  for (const auto& [name, j] : {std::pair<const char*, const ordered_json*>{"tokenizer.json", &tokenizer},
                                {"tokenizer_config.json", &config}}) {
    const std::string text = j->dump(j == &config ? 2 : -1) + "\n";
    AtomicFileWriter out((fs::path(dir) / name).string());
    out.write(text.data(), text.size());
    out.commit();
  }
}

}  // namespace dsv3
