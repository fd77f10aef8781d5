// The BPE model of a Hugging Face tokenizer.json ("model": {"type": "BPE", ...}) over the
// byte-level alphabet: a piece's bytes become byte-level symbols, then merges apply in
// rank order. Merging follows the Hugging Face library exactly: the lowest-ranked
// adjacent pair first, ties to the leftmost, one pair at a time.
#pragma once

#include <array>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace dsv3 {

class BpeModel {
 public:
  // `where` names the file for error messages.
  static BpeModel from_json(const nlohmann::json& model, const std::string& where);

  // Appends the ids of one pre-tokenized piece (raw bytes).
  void encode(std::string_view piece, std::vector<int32_t>& out);

  // The token's byte-level symbol string, or nullptr when the id is not in the vocabulary.
  const std::string* token(int32_t id) const;
  // One past the largest id in the vocabulary.
  int32_t id_limit() const { return static_cast<int32_t>(tokens_.size()); }

 private:
  struct Merge {
    int32_t rank;
    int32_t result;
  };
  static uint64_t pair_key(int32_t left, int32_t right) {
    return (uint64_t(uint32_t(left)) << 32) | uint32_t(right);
  }
  void merge_symbols(std::vector<int32_t>& out);

  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  using WordCache = std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>>;

  std::vector<std::string> tokens_;                 // by id ("" for ids the vocab skips)
  std::vector<bool> has_token_;
  std::array<int32_t, 256> byte_ids_{};             // id of each byte's single-symbol token
  std::unordered_map<uint64_t, Merge> merges_;      // (left id, right id) -> rank and result
  std::unordered_map<std::string, int32_t> vocab_;  // symbol string -> id (ignore_merges lookups)
  bool ignore_merges_ = false;
  WordCache cache_;                                 // piece bytes -> ids; results never change

  // Scratch for merge_symbols, reused between pieces.
  struct Symbol {
    int32_t id, prev, next;
    bool alive;
  };
  struct Candidate {
    int32_t rank, pos, result;
  };
  std::vector<Symbol> symbols_;
  std::vector<Candidate> heap_;
};

}  // namespace dsv3
