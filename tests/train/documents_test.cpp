#include "train/documents.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "base/error.h"
#include "base/thread_pool.h"
#include "tokenizer/bpe_trainer.h"

namespace dsv3 {
namespace {

Tokenizer trained_tokenizer() {
  ThreadPool pool(1);
  BpeTrainerOptions options;
  options.vocab_size = 300;
  const std::string dir = (std::filesystem::path(testing::TempDir()) / "fim_tokenizer").string();
  write_tokenizer_files(dir, train_bpe({"def add(a, b):\n    return a + b\n"}, options, pool));
  return Tokenizer::load(dir);
}

TEST(DocumentEncoderTest, PlainDocumentsAreBosTextEos) {
  Tokenizer t = trained_tokenizer();
  DocumentEncoder encoder(t, 0.0, 1);
  std::vector<int32_t> ids;
  encoder.encode("héllo wörld", ids);
  EXPECT_EQ(ids.front(), 0);
  EXPECT_EQ(ids.back(), 1);
  EXPECT_EQ(t.decode(std::vector<int32_t>(ids.begin() + 1, ids.end() - 1)), "héllo wörld");
}

TEST(DocumentEncoderTest, FimRearrangesIntoPrefixSuffixMiddle) {
  Tokenizer t = trained_tokenizer();
  DocumentEncoder encoder(t, 1.0, 7);
  const std::string text = "def add(a, b):\n    return a + b  # héllo\n";
  for (int trial = 0; trial < 50; ++trial) {
    std::vector<int32_t> ids;
    encoder.encode(text, ids);
    // <bos> <fim_begin> prefix <fim_hole> suffix <fim_end> middle <eos>
    ASSERT_EQ(ids[0], 0);
    ASSERT_EQ(ids[1], *t.token_id("<｜fim▁begin｜>"));
    ASSERT_EQ(ids.back(), 1);
    const auto hole = std::find(ids.begin(), ids.end(), *t.token_id("<｜fim▁hole｜>"));
    const auto end = std::find(ids.begin(), ids.end(), *t.token_id("<｜fim▁end｜>"));
    ASSERT_TRUE(hole < end && end < ids.end());
    const std::string prefix = t.decode(std::vector<int32_t>(ids.begin() + 2, hole));
    const std::string suffix = t.decode(std::vector<int32_t>(hole + 1, end));
    const std::string middle = t.decode(std::vector<int32_t>(end + 1, ids.end() - 1));
    EXPECT_EQ(prefix + middle + suffix, text);
  }
}

TEST(DocumentEncoderTest, RateOutsideZeroToOneIsAnError) {
  Tokenizer t = trained_tokenizer();
  EXPECT_THROW(DocumentEncoder encoder(t, 1.5, 0), Error);
}

}  // namespace
}  // namespace dsv3
