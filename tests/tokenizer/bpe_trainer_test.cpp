#include "tokenizer/bpe_trainer.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "base/error.h"
#include "formats/json_file.h"
#include "tokenizer/tokenizer.h"

namespace dsv3 {
namespace {

TEST(BpeTrainerTest, MergesTheMostFrequentPairsFirst) {
  // Words (DeepSeek pre-tokenizer): "abab" x3, " ab" x2 -> pairs: (a,b) 3*2 + 2 = 8,
  // (b,a) 3, (Ġ,a) 2. First merge a+b; then "ab ab" gives (ab,ab) 3 > (Ġ,ab) 2.
  ThreadPool pool(1);
  BpeTrainerOptions options;
  options.vocab_size = 8 + 256 + 2;
  const BpeTrainingResult r = train_bpe({"abab\nabab\nabab\n ab ab"}, options, pool);
  ASSERT_EQ(r.merges.size(), 2u);
  EXPECT_EQ(r.merges[0], (std::pair<std::string, std::string>{"a", "b"}));
  EXPECT_EQ(r.merges[1], (std::pair<std::string, std::string>{"ab", "ab"}));
}

TEST(BpeTrainerTest, StopsWhenNoPairIsFrequentEnough) {
  ThreadPool pool(1);
  BpeTrainerOptions options;
  options.vocab_size = 1000;
  options.min_frequency = 2;
  const BpeTrainingResult r = train_bpe({"xy xy qz"}, options, pool);
  EXPECT_TRUE(r.stopped_early);
  // Words "xy", " xy", " qz": only (x, y) occurs twice.
  ASSERT_EQ(r.merges.size(), 1u);
}

TEST(BpeTrainerTest, SameResultWithAnyThreadCount) {
  std::string text;
  for (int i = 0; i < 30000; ++i) text += "line " + std::to_string(i * 7919 % 1000) + " of the text, again and again\n";
  BpeTrainerOptions options;
  options.vocab_size = 600;
  ThreadPool one(1), three(3);
  const auto a = train_bpe({text, "more text"}, options, one);
  const auto b = train_bpe({text, "more text"}, options, three);
  EXPECT_EQ(a.merges, b.merges);
  EXPECT_EQ(a.merges.size(), 600u - 264u);
}

TEST(BpeTrainerTest, WrittenFilesLoadAndRoundTrip) {
  ThreadPool pool(2);
  BpeTrainerOptions options;
  options.vocab_size = 400;
  const std::string text = "In the beginning God created the heaven and the earth. 12345 你好 <｜User｜>";
  const auto result = train_bpe({text, text, text}, options, pool);
  const std::string dir = (std::filesystem::path(testing::TempDir()) / "trained_tok").string();
  write_tokenizer_files(dir, result);
  Tokenizer t = Tokenizer::load(dir);
  EXPECT_EQ(t.vocab_size(), static_cast<int32_t>(264 + result.merges.size()));
  EXPECT_EQ(t.bos_id(), 0);
  EXPECT_EQ(t.eos_id(), 1);
  EXPECT_EQ(t.token_id("<｜Assistant｜>"), 7);
  const auto ids = t.encode(text, true);
  EXPECT_EQ(ids.front(), 0);
  EXPECT_EQ(ids.back(), 6);  // <｜User｜> is one token
  EXPECT_EQ(t.decode(std::vector<int32_t>(ids.begin() + 1, ids.end())), text);
  const auto config = read_json_file(dir + "/tokenizer_config.json");
  EXPECT_TRUE(config["add_bos_token"].get<bool>());
  EXPECT_NE(config["chat_template"].get<std::string>().find("<｜User｜>"), std::string::npos);
}

TEST(BpeTrainerTest, VocabularyBelowTheFixedTokensIsAnError) {
  ThreadPool pool(1);
  BpeTrainerOptions options;
  options.vocab_size = 100;
  EXPECT_THROW(train_bpe({"text"}, options, pool), Error);
}

}  // namespace
}  // namespace dsv3
