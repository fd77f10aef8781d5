#include "infer/text_stream.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "base/error.h"
#include "base/thread_pool.h"
#include "tokenizer/bpe_trainer.h"
#include "valid_utf8.h"

namespace dsv3 {
namespace {

// Byte tokens only (no merges): every multi-byte character spans several tokens.
Tokenizer& byte_tokenizer() {
  static Tokenizer tokenizer = [] {
    ThreadPool pool(1);
    BpeTrainerOptions options;
    options.vocab_size = 8 + 256;
    const std::string dir = (std::filesystem::path(testing::TempDir()) / "byte_tokenizer").string();
    write_tokenizer_files(dir, train_bpe({"x"}, options, pool));
    return Tokenizer::load(dir);
  }();
  return tokenizer;
}

// Streams text token by token; returns the pieces shown.
std::vector<std::string> stream(const std::string& text, std::vector<std::string> stops, bool* stopped = nullptr) {
  Tokenizer& t = byte_tokenizer();
  TextStream out(t, std::move(stops));
  std::vector<std::string> pieces;
  for (int32_t id : t.encode(text, false)) {
    pieces.push_back(out.push(id));
    if (out.stopped()) break;
  }
  pieces.push_back(out.finish());
  if (stopped) *stopped = out.stopped();
  return pieces;
}

std::string join(const std::vector<std::string>& pieces) {
  std::string all;
  for (const auto& p : pieces) all += p;
  return all;
}

TEST(TextStreamTest, EveryPieceIsWholeCharacters) {
  const std::string text = "héllo wörld — 你好, 🙂 done";
  const auto pieces = stream(text, {});
  EXPECT_EQ(join(pieces), text);
  for (const auto& p : pieces) EXPECT_TRUE(valid_utf8(p)) << p;
}

TEST(TextStreamTest, StopsBeforeAStopStringAndNeverShowsPartOfIt) {
  bool stopped = false;
  const auto pieces = stream("one two\n\nUser: three", {"\n\nUser:", "zzz"}, &stopped);
  EXPECT_TRUE(stopped);
  EXPECT_EQ(join(pieces), "one two");
  for (const auto& p : pieces) EXPECT_EQ(p.find('\n'), std::string::npos);
  // The earliest of several stop strings wins, including multi-byte ones.
  EXPECT_EQ(join(stream("abc 你好 def ghi", {"ghi", "好"})), "abc 你");
}

TEST(TextStreamTest, HeldBackTextIsShownWhenNoStopFollows) {
  bool stopped = true;
  EXPECT_EQ(join(stream("the end\n\nUs", {"\n\nUser:"}, &stopped)), "the end\n\nUs");
  EXPECT_FALSE(stopped);
  EXPECT_EQ(join(stream("a\n\nb\n\nUser", {"\n\nUser:"})), "a\n\nb\n\nUser");
}

TEST(TextStreamTest, EndOfSequenceIsNotTextAndEmptyStopsAreErrors) {
  Tokenizer& t = byte_tokenizer();
  TextStream out(t, {});
  ASSERT_TRUE(t.eos_id());
  EXPECT_EQ(out.push(*t.eos_id()), "");
  EXPECT_THROW(TextStream(t, {""}), Error);
}

// A model's vocabulary may be larger than its tokenizer's (DeepSeek-V3 pads 128815 tokens to
// 129280 logits): a sampled id without text prints nothing and the stream goes on.
TEST(TextStreamTest, IdsPastTheTokenizerPrintNothing) {
  Tokenizer& t = byte_tokenizer();
  TextStream out(t, {});
  const std::vector<int32_t> ids = t.encode("ab", false);
  ASSERT_FALSE(t.has_token(t.vocab_size() + 5));
  EXPECT_EQ(out.push(ids[0]) + out.push(t.vocab_size() + 5) + out.push(ids[1]) + out.finish(), "ab");
  EXPECT_THROW(t.decode({t.vocab_size() + 5}), Error);  // decoding ids a user gave stays an error
}

}  // namespace
}  // namespace dsv3
