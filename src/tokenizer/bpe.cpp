#include "tokenizer/bpe.h"

#include <algorithm>

#include "base/error.h"
#include "tokenizer/byte_level.h"

namespace dsv3 {

using nlohmann::json;

namespace {

constexpr size_t kMaxCachedWords = 1 << 18;
constexpr size_t kMaxCachedWordBytes = 256;

bool null_or(const json& model, const char* key, const json& accepted) {
  return !model.contains(key) || model[key].is_null() || model[key] == accepted;
}

}  // namespace

BpeModel BpeModel::from_json(const json& model, const std::string& where) {
  if (!model.is_object()) fail("tokenizer has no model object (", where, ")");
  const std::string type = model.value("type", std::string("BPE"));
  if (type != "BPE") fail("tokenizer model type ", type, " is not supported (", where, "; only byte-level BPE)");
  if (!null_or(model, "dropout", 0.0)) fail("BPE dropout is not supported (", where, ": model.dropout)");
  if (!null_or(model, "continuing_subword_prefix", "") || !null_or(model, "end_of_word_suffix", ""))
    fail("BPE subword prefixes/suffixes are not supported (", where, ")");
  if (model.value("byte_fallback", false)) fail("BPE byte_fallback is not supported (", where, ")");
  if (!model.contains("vocab") || !model["vocab"].is_object()) fail("BPE model has no vocab object (", where, ")");
  if (!model.contains("merges") || !model["merges"].is_array()) fail("BPE model has no merges array (", where, ")");

  BpeModel m;
  m.ignore_merges_ = model.value("ignore_merges", false);
  for (const auto& [symbols, id] : model["vocab"].items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= (1 << 30))
      fail("vocab id of '", symbols, "' must be a non-negative integer below 2^30 (", where, ": model.vocab)");
    const auto i = static_cast<size_t>(id.get<int64_t>());
    if (i >= m.tokens_.size()) {
      m.tokens_.resize(i + 1);
      m.has_token_.resize(i + 1, false);
    }
    if (m.has_token_[i]) fail("vocab id ", i, " is used twice (", where, ": model.vocab)");
    m.tokens_[i] = symbols;
    m.has_token_[i] = true;
    m.vocab_.emplace(symbols, static_cast<int32_t>(i));
  }
  const auto& symbols = byte_level_symbols();
  for (int b = 0; b < 256; ++b) {
    auto it = m.vocab_.find(symbols[b]);
    if (it == m.vocab_.end()) fail("vocab has no token for byte ", b, " (", where, ": model.vocab)");
    m.byte_ids_[b] = it->second;
  }

  int32_t rank = 0;
  for (const json& merge : model["merges"]) {
    std::string left, right;
    if (merge.is_string()) {  // "left right"
      const std::string s = merge.get<std::string>();
      const size_t space = s.find(' ');
      if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos)
        fail("merge ", rank, " '", s, "' is not two symbols separated by one space (", where, ": model.merges)");
      left = s.substr(0, space), right = s.substr(space + 1);
    } else if (merge.is_array() && merge.size() == 2 && merge[0].is_string() && merge[1].is_string()) {
      left = merge[0].get<std::string>(), right = merge[1].get<std::string>();
    } else {
      fail("merge ", rank, " must be a string or a pair of strings (", where, ": model.merges)");
    }
    auto l = m.vocab_.find(left), r = m.vocab_.find(right), result = m.vocab_.find(left + right);
    if (l == m.vocab_.end() || r == m.vocab_.end() || result == m.vocab_.end())
      fail("merge ", rank, " '", left, " ", right, "' uses or makes a token missing from the vocab (", where,
           ": model.merges)");
    // A repeated pair keeps its first (lowest) rank, as in the Hugging Face library.
    m.merges_.emplace(pair_key(l->second, r->second), Merge{rank, result->second});
    ++rank;
  }
  return m;
}

const std::string* BpeModel::token(int32_t id) const {
  if (id < 0 || id >= id_limit() || !has_token_[id]) return nullptr;
  return &tokens_[id];
}

void BpeModel::encode(std::string_view piece, std::vector<int32_t>& out) {
  if (piece.size() <= kMaxCachedWordBytes) {
    if (auto hit = cache_.find(piece); hit != cache_.end()) {
      out.insert(out.end(), hit->second.begin(), hit->second.end());
      return;
    }
  }
  const size_t start = out.size();
  bool whole_word = false;
  if (ignore_merges_) {  // a piece that is itself a token is taken whole
    std::string symbols;
    bytes_to_byte_level(piece, symbols);
    if (auto it = vocab_.find(symbols); it != vocab_.end()) {
      out.push_back(it->second);
      whole_word = true;
    }
  }
  if (!whole_word) {
    for (unsigned char b : piece) out.push_back(byte_ids_[b]);
    std::vector<int32_t> word(out.begin() + static_cast<ptrdiff_t>(start), out.end());
    merge_symbols(word);
    out.resize(start);
    out.insert(out.end(), word.begin(), word.end());
  }
  if (piece.size() <= kMaxCachedWordBytes) {
    if (cache_.size() >= kMaxCachedWords) cache_.clear();
    cache_.emplace(std::string(piece), std::vector<int32_t>(out.begin() + static_cast<ptrdiff_t>(start), out.end()));
  }
}

void BpeModel::merge_symbols(std::vector<int32_t>& ids) {
  const int32_t n = static_cast<int32_t>(ids.size());
  if (n < 2) return;
  symbols_.resize(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) symbols_[i] = {ids[i], i - 1, i + 1 < n ? i + 1 : -1, true};

  // Min-heap on (rank, position): the lowest-ranked pair first, ties to the leftmost.
  auto later = [](const Candidate& a, const Candidate& b) { return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos; };
  heap_.clear();
  auto push_pair = [&](int32_t pos) {
    const int32_t next = symbols_[pos].next;
    if (next < 0) return;
    auto it = merges_.find(pair_key(symbols_[pos].id, symbols_[next].id));
    if (it == merges_.end()) return;
    heap_.push_back({it->second.rank, pos, it->second.result});
    std::push_heap(heap_.begin(), heap_.end(), later);
  };
  for (int32_t i = 0; i + 1 < n; ++i) push_pair(i);

  while (!heap_.empty()) {
    std::pop_heap(heap_.begin(), heap_.end(), later);
    const Candidate top = heap_.back();
    heap_.pop_back();
    Symbol& left = symbols_[top.pos];
    if (!left.alive || left.next < 0) continue;
    // The pair may have changed since it was queued: merge only if it still makes `result`.
    const Symbol& right = symbols_[left.next];
    auto it = merges_.find(pair_key(left.id, right.id));
    if (it == merges_.end() || it->second.result != top.result) continue;

    const int32_t right_pos = left.next;
    left.id = top.result;
    left.next = right.next;
    symbols_[right_pos].alive = false;
    if (left.next >= 0) symbols_[left.next].prev = top.pos;
    if (left.prev >= 0) push_pair(left.prev);
    push_pair(top.pos);
  }
  ids.clear();
  for (int32_t i = 0; i >= 0; i = symbols_[i].next) ids.push_back(symbols_[i].id);
}

}  // namespace dsv3
