#include "cli/token_ids.h"

#include <climits>
#include <sstream>

#include "base/error.h"

namespace dsv3::cli {

std::vector<int32_t> parse_token_ids(const std::string& text, const std::string& flag, bool required) {
  std::string spaced = text;
  for (char& ch : spaced)
    if (ch == ',') ch = ' ';
  std::vector<int32_t> ids;
  std::istringstream in(spaced);
  std::string word;
  while (in >> word) {
    size_t used = 0;
    long long value = -1;
    try {
      value = std::stoll(word, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != word.size() || value < 0 || value > INT32_MAX) fail("invalid token id '", word, "' (", flag, ")");
    ids.push_back(static_cast<int32_t>(value));
  }
  if (required && ids.empty()) fail("no token ids given (", flag, ")");
  return ids;
}

}  // namespace dsv3::cli
