#include "tokenizer/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "base/error.h"

namespace dsv3 {

struct Regex::Code {
  pcre2_code* code = nullptr;
  ~Code() { pcre2_code_free(code); }
};

Regex::Regex(const std::string& pattern, bool literal, const std::string& where)
    : pattern_(pattern), code_(std::make_shared<Code>()) {
  int error = 0;
  PCRE2_SIZE offset = 0;
  uint32_t options = PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF | (literal ? PCRE2_LITERAL : 0u);
  code_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), options, &error,
                              &offset, nullptr);
  if (!code_->code) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof message);
    fail("regex does not compile at offset ", offset, ": ", reinterpret_cast<const char*>(message), " (", where, ")");
  }
  pcre2_jit_compile(code_->code, PCRE2_JIT_COMPLETE);  // falls back to the interpreter if JIT is unavailable
  match_data_ = pcre2_match_data_create_from_pattern(code_->code, nullptr);
}

Regex::Regex(const Regex& other) : pattern_(other.pattern_), code_(other.code_) {
  match_data_ = pcre2_match_data_create_from_pattern(code_->code, nullptr);
}

Regex::~Regex() { pcre2_match_data_free(static_cast<pcre2_match_data*>(match_data_)); }

bool Regex::find(std::string_view subject, size_t start, size_t& match_begin, size_t& match_end) {
  auto* md = static_cast<pcre2_match_data*>(match_data_);
  const int rc = pcre2_match(code_->code, reinterpret_cast<PCRE2_SPTR>(subject.data()), subject.size(), start, 0, md,
                             nullptr);
  if (rc < 0) return false;  // no match (or a match-time limit: treated as none)
  const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(md);
  match_begin = ovector[0];
  match_end = ovector[1];
  return true;
}

}  // namespace dsv3
