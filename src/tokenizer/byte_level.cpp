#include "tokenizer/byte_level.h"

#include <vector>

namespace dsv3 {

namespace {

std::string utf8(uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else if (cp < 0x800) {
    s += static_cast<char>(0xc0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3f));
  } else {
    s += static_cast<char>(0xe0 | (cp >> 12));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    s += static_cast<char>(0x80 | (cp & 0x3f));
  }
  return s;
}

// Code point of each byte's symbol: bytes that are printable and not space keep their
// value ('!'..'~', '¡'..'¬', '®'..'ÿ'); the other 68 take 256, 257, ... in byte order.
std::array<uint32_t, 256> byte_code_points() {
  std::array<uint32_t, 256> cps{};
  uint32_t next = 256;
  for (uint32_t b = 0; b < 256; ++b) {
    const bool printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    cps[b] = printable ? b : next++;
  }
  return cps;
}

struct Tables {
  std::array<std::string, 256> symbols;
  std::vector<int16_t> byte_of_code_point;  // -1 where a code point is not a symbol
  Tables() : byte_of_code_point(512, -1) {
    const auto cps = byte_code_points();
    for (int b = 0; b < 256; ++b) {
      symbols[b] = utf8(cps[b]);
      byte_of_code_point[cps[b]] = static_cast<int16_t>(b);
    }
  }
};

const Tables& tables() {
  static const Tables t;
  return t;
}

}  // namespace

const std::array<std::string, 256>& byte_level_symbols() { return tables().symbols; }

void bytes_to_byte_level(std::string_view bytes, std::string& out) {
  const auto& symbols = tables().symbols;
  for (unsigned char b : bytes) out += symbols[b];
}

bool byte_level_to_bytes(std::string_view s, std::string& out) {
  const auto& lookup = tables().byte_of_code_point;
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    uint32_t cp;
    if (c < 0x80) {
      cp = c, i += 1;
    } else if ((c & 0xe0) == 0xc0 && i + 1 < s.size()) {
      cp = ((c & 0x1fu) << 6) | (static_cast<unsigned char>(s[i + 1]) & 0x3fu), i += 2;
    } else {
      return false;  // symbols are all below U+0800
    }
    if (cp >= lookup.size() || lookup[cp] < 0) return false;
    out += static_cast<char>(lookup[cp]);
  }
  return true;
}

}  // namespace dsv3
