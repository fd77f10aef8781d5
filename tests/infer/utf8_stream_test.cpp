#include "infer/utf8_stream.h"

#include <gtest/gtest.h>

#include "valid_utf8.h"

namespace dsv3 {
namespace {

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
