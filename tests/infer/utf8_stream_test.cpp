#include "infer/utf8_stream.h"

#include <gtest/gtest.h>

namespace dsv3 {
namespace {

// True when s is valid UTF-8 (no truncated or stray sequences).
bool valid_utf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    const auto b = static_cast<unsigned char>(s[i]);
    const size_t n = b < 0x80 ? 1 : (b & 0xe0) == 0xc0 ? 2 : (b & 0xf0) == 0xe0 ? 3 : (b & 0xf8) == 0xf0 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t j = 1; j < n; ++j)
      if ((static_cast<unsigned char>(s[i + j]) & 0xc0) != 0x80) return false;
    i += n;
  }
  return true;
}

TEST(Utf8StreamTest, NeverEmitsAPartialCharacterWhateverTheSplit) {
  const std::string text = "héllo 中文 🎉👨‍👩‍👧 ok";
  // Every way of cutting the text into two or three pieces.
  for (size_t a = 0; a <= text.size(); ++a)
    for (size_t b = a; b <= text.size(); ++b) {
      Utf8Stream stream;
      std::string shown;
      for (auto piece : {text.substr(0, a), text.substr(a, b - a), text.substr(b)}) {
        const std::string out = stream.push(piece);
        EXPECT_TRUE(valid_utf8(out)) << a << " " << b;
        shown += out;
      }
      shown += stream.flush();
      EXPECT_EQ(shown, text);
    }
}

TEST(Utf8StreamTest, InvalidBytesPassThrough) {
  Utf8Stream stream;
  std::string shown = stream.push("a\xff" "b\x80");
  shown += stream.push("c");
  shown += stream.flush();
  EXPECT_EQ(shown, "a\xff" "b\x80" "c");
}

}  // namespace
}  // namespace dsv3
