#include "tokenizer/tokenizer.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "base/error.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/chat_template.h"

namespace dsv3 {
namespace {

using nlohmann::json;

TEST(ByteLevelTest, KnownSymbolsAndRoundTripOfEveryByte) {
  const auto& symbols = byte_level_symbols();
  EXPECT_EQ(symbols['a'], "a");
  EXPECT_EQ(symbols[' '], "\u0120");   // GPT-2's 'Ġ'
  EXPECT_EQ(symbols['\n'], "\u010a");  // 'Ċ'
  EXPECT_EQ(symbols[0], "\u0100");
  EXPECT_EQ(symbols[0xad], "\u0143");  // soft hyphen is not printable: the last remapped byte
  std::string all;
  for (int b = 0; b < 256; ++b) all += static_cast<char>(b);
  std::string mapped, back;
  bytes_to_byte_level(all, mapped);
  ASSERT_TRUE(byte_level_to_bytes(mapped, back));
  EXPECT_EQ(back, all);
  EXPECT_FALSE(byte_level_to_bytes("\u4e00", back));
}

// A tokenizer.json over the byte-level alphabet plus the given merges and added tokens,
// with a whitespace-splitting pre-tokenizer.
std::string write_tokenizer(const std::string& name, const std::vector<std::string>& merges,
                            const json& added_tokens = json::array(), const json& overrides = json::object()) {
  json vocab = json::object();
  int id = 0;
  for (const std::string& s : byte_level_symbols()) vocab[s] = id++;
  for (const std::string& m : merges) {
    const size_t space = m.find(' ');
    const std::string merged = m.substr(0, space) + m.substr(space + 1);
    if (!vocab.contains(merged)) vocab[merged] = id++;
  }
  json j = {{"version", "1.0"},
            {"added_tokens", added_tokens},
            {"normalizer", nullptr},
            {"pre_tokenizer",
             {{"type", "Sequence"},
              {"pretokenizers",
               {{{"type", "Split"}, {"pattern", {{"Regex", "\\s+"}}}, {"behavior", "Isolated"}, {"invert", false}},
                {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}}},
            {"decoder", {{"type", "ByteLevel"}}},
            {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}}}};
  j.merge_patch(overrides);
  const auto dir = std::filesystem::path(testing::TempDir()) / ("tok_" + name);
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "tokenizer.json") << j.dump();
  return dir.string();
}

// The ids of single-byte tokens are the byte values' positions in the alphabet, i.e.
// byte order; merged tokens follow from 256 in merge order.
int32_t byte_id(char c) { return static_cast<unsigned char>(c); }

TEST(BpeTest, LowestRankedPairMergesFirst) {
  Tokenizer a = Tokenizer::load(write_tokenizer("rank_ab", {"a b", "b c"}));
  EXPECT_EQ(a.encode("abc", false), (std::vector<int32_t>{256, byte_id('c')}));  // ab|c
  Tokenizer b = Tokenizer::load(write_tokenizer("rank_bc", {"b c", "a b"}));
  EXPECT_EQ(b.encode("abc", false), (std::vector<int32_t>{byte_id('a'), 256}));  // a|bc
}

TEST(BpeTest, EqualRanksMergeLeftmostFirstAndChain) {
  Tokenizer t = Tokenizer::load(write_tokenizer("ties", {"a a", "aa a", "aa aa"}));
  EXPECT_EQ(t.encode("aaa", false), (std::vector<int32_t>{257}));       // (aa)a -> aaa
  EXPECT_EQ(t.encode("aaaa", false), (std::vector<int32_t>{258}));      // (aa)(aa) -> aaaa
  // aa,aa,a: the rank-1 merge (aa a) beats the rank-2 one (aa aa) -> aa,aaa
  EXPECT_EQ(t.encode("aaaaa", false), (std::vector<int32_t>{256, 257}));
}

TEST(BpeTest, PiecesDoNotMergeAcrossPreTokenizerSplits) {
  Tokenizer t = Tokenizer::load(write_tokenizer("pieces", {"a \u0120", "\u0120 b"}));
  // "a b" splits into "a", " ", "b": no merge may join across the pieces.
  EXPECT_EQ(t.encode("a b", false), (std::vector<int32_t>{byte_id('a'), byte_id(' '), byte_id('b')}));
}

TEST(AddedTokensTest, LeftmostLongestAndDecode) {
  const json added = json::array({{{"id", 300}, {"content", "<x>"}, {"special", true}, {"normalized", false}},
                                  {{"id", 301}, {"content", "<x>y"}, {"special", true}, {"normalized", false}},
                                  {{"id", 302}, {"content", "x>"}, {"special", false}, {"normalized", true}}});
  Tokenizer t = Tokenizer::load(write_tokenizer("added", {}, added));
  EXPECT_EQ(t.encode("a<x>yb<x>", false), (std::vector<int32_t>{byte_id('a'), 301, byte_id('b'), 300}));
  // normalized tokens are matched only in the text between the others
  EXPECT_EQ(t.encode("qx>", false), (std::vector<int32_t>{byte_id('q'), 302}));
  EXPECT_EQ(t.decode({byte_id('a'), 301, 302}), "a<x>yx>");
  EXPECT_THROW(t.decode({400}), Error);
}

TEST(TokenizerTest, RoundTripsInvalidUtf8Bytes) {
  Tokenizer t = Tokenizer::load(write_tokenizer("invalid_utf8", {}));
  const std::string bytes = "ok \xff\xfe \xc3 \x80\x80 \xe4\xb8 end\xf0\x9f";
  EXPECT_EQ(t.decode(t.encode(bytes, false)), bytes);
}

void expect_load_error(const std::string& dir, const std::string& fragment) {
  try {
    Tokenizer::load(dir);
    ADD_FAILURE() << "no error for " << fragment;
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(fragment), std::string::npos) << message;
    EXPECT_NE(message.find("tokenizer.json"), std::string::npos) << message;
  }
}

TEST(TokenizerTest, MalformedFilesGiveClearErrors) {
  expect_load_error(write_tokenizer("no_model", {}, json::array(), {{"model", nullptr}}), "model");
  expect_load_error(write_tokenizer("unigram", {}, json::array(), {{"model", {{"type", "Unigram"}}}}), "Unigram");
  expect_load_error(write_tokenizer("whitespace", {}, json::array(), {{"pre_tokenizer", {{"type", "Whitespace"}}}}),
                    "Whitespace");
  expect_load_error(write_tokenizer("nfc", {}, json::array(), {{"normalizer", {{"type", "NFC"}}}}), "NFC");
  expect_load_error(write_tokenizer("bad_regex", {}, json::array(),
                                    {{"pre_tokenizer", {{"type", "Split"}, {"pattern", {{"Regex", "(("}}},
                                                        {"behavior", "Isolated"}}}}),
                    "regex");
  expect_load_error(write_tokenizer("merged_behavior", {}, json::array(),
                                    {{"pre_tokenizer", {{"type", "Split"}, {"pattern", {{"Regex", "a"}}},
                                                        {"behavior", "MergedWithPrevious"}}}}),
                    "MergedWithPrevious");
  expect_load_error(write_tokenizer("bad_merge", {"a zz"}), "merge 0");
  expect_load_error(write_tokenizer("lstrip", {},
                                    json::array({{{"id", 300}, {"content", "<m>"}, {"lstrip", true}}})),
                    "lstrip");
  const auto dir = std::filesystem::path(testing::TempDir()) / "tok_truncated";
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "tokenizer.json") << R"({"model": {"type": "BPE", "vocab": {"a": 0)";
  expect_load_error(dir.string(), "malformed JSON");
}

TEST(ChatTemplateTest, RendersDeepSeekV3Conversations) {
  const std::string bos = "<｜begin▁of▁sentence｜>";
  EXPECT_EQ(render_deepseek_chat({{"user", "Hi"}}, true, bos), bos + "<｜User｜>Hi<｜Assistant｜>");
  EXPECT_EQ(render_deepseek_chat({{"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello."}, {"user", "Bye"}},
                                 true, bos),
            bos + "Be brief.<｜User｜>Hi<｜Assistant｜>Hello.<｜end▁of▁sentence｜><｜User｜>Bye<｜Assistant｜>");
  // Every system message moves to the front, joined by a blank line.
  EXPECT_EQ(render_deepseek_chat({{"system", "A"}, {"user", "u"}, {"system", "B"}}, false, bos),
            bos + "A\n\nB<｜User｜>u");
  EXPECT_THROW(render_deepseek_chat({{"tool", "x"}}, false, bos), Error);
}

}  // namespace
}  // namespace dsv3
