// A compiled Unicode regular expression (PCRE2 with JIT, UTF + UCP semantics).
//
// PCRE2 rather than RE2 or std::regex: the pre-tokenizer rules of DeepSeek-V3 (and of
// most byte-level BPE tokenizers) need Unicode properties (\p{L}, \p{N}, \p{M}, \p{P},
// \p{S}) and look-ahead (\s+(?!\S)); RE2 has no look-ahead and std::regex no Unicode.
// Invalid UTF-8 in the subject is allowed (PCRE2_MATCH_INVALID_UTF): it never matches,
// so such bytes end up in pieces of their own and still round-trip through byte-level BPE.
#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace dsv3 {

class Regex {
 public:
  // Throws Error naming `where` if the pattern does not compile.
  Regex(const std::string& pattern, bool literal, const std::string& where);
  Regex(const Regex& other);  // shares the compiled code, gets its own match state
  Regex& operator=(const Regex&) = delete;
  ~Regex();

  // Finds the first match in subject starting at or after `start`; the subject's end is
  // a hard boundary for look-ahead. Returns false when there is none.
  bool find(std::string_view subject, size_t start, size_t& match_begin, size_t& match_end);

  const std::string& pattern() const { return pattern_; }

 private:
  struct Code;
  std::string pattern_;
  std::shared_ptr<Code> code_;
  void* match_data_ = nullptr;  // pcre2_match_data_8*
};

}  // namespace dsv3
