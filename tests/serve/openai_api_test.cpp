#include "serve/openai_api.h"

#include <gtest/gtest.h>

namespace dsv3::serve {
namespace {

// The param an ApiError names, or "" when parsing succeeds.
std::string rejected_param(Endpoint endpoint, const std::string& body) {
  try {
    parse_request(endpoint, body);
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status, 400) << body;
    return e.param.empty() ? "(none)" : e.param;
  }
  return "";
}

TEST(OpenAiApiTest, ParsesChatRequestsWithOpenAiDefaults) {
  const ApiRequest r = parse_request(Endpoint::kChatCompletions, R"({
    "model": "x", "messages": [{"role": "developer", "content": "Be brief."},
                               {"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}]}],
    "temperature": null, "stop": ["a", "b"], "stream": true, "stream_options": {"include_usage": true}, "seed": 3})");
  ASSERT_EQ(r.messages.size(), 2u);
  EXPECT_EQ(r.messages[0].role, "system");
  EXPECT_EQ(r.messages[1].content, "Hi there");
  EXPECT_EQ(r.sampling.temperature, 1.0f);  // null means not set: OpenAI's default
  EXPECT_EQ(r.sampling.top_p, 1.0f);
  EXPECT_EQ(r.sampling.seed, 3u);
  EXPECT_EQ(r.stop, (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(r.stream && r.include_usage);
  EXPECT_FALSE(r.max_tokens.has_value());

  const ApiRequest c = parse_request(Endpoint::kCompletions, R"({"prompt": ["one"], "max_tokens": 5, "stop": "x"})");
  EXPECT_EQ(c.prompt, "one");
  EXPECT_EQ(*c.max_tokens, 5);
  EXPECT_EQ(c.stop, std::vector<std::string>{"x"});
}

TEST(OpenAiApiTest, RejectsBadRequestsNamingTheField) {
  const Endpoint chat = Endpoint::kChatCompletions, completions = Endpoint::kCompletions;
  const std::string user = R"("messages": [{"role": "user", "content": "hi"}])";
  EXPECT_EQ(rejected_param(chat, "{"), "(none)");
  EXPECT_EQ(rejected_param(chat, "[]"), "(none)");
  EXPECT_EQ(rejected_param(chat, R"({"messages": []})"), "messages");
  EXPECT_EQ(rejected_param(chat, R"({"model": "x"})"), "messages");
  EXPECT_EQ(rejected_param(chat, R"({"messages": [{"role": "system", "content": "s"}]})"), "messages");
  EXPECT_EQ(rejected_param(chat, R"({"messages": [{"role": "user"}]})"), "messages[0].content");
  EXPECT_EQ(rejected_param(chat, R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})"),
            "messages[0].content[0]");
  EXPECT_EQ(rejected_param(chat, R"({"messages": [{"role": "tool", "content": "x"}]})"), "messages[0].role");
  EXPECT_EQ(rejected_param(chat, "{" + user + R"(, "max_tokens": 1.5})"), "max_tokens");
  EXPECT_EQ(rejected_param(chat, "{" + user + R"(, "max_tokens": 18446744073709551615})"), "max_tokens");
  EXPECT_EQ(rejected_param(chat, "{" + user + R"(, "temperature": 3})"), "temperature");
  EXPECT_EQ(rejected_param(chat, "{" + user + R"(, "top_p": 0})"), "top_p");
  EXPECT_EQ(rejected_param(chat, "{" + user + R"(, "stop": [""]})"), "stop");
  EXPECT_EQ(rejected_param(chat, "{" + user + R"(, "stop": 5})"), "stop");
  EXPECT_EQ(rejected_param(chat, "{" + user + R"(, "n": 2})"), "n");
  EXPECT_EQ(rejected_param(chat, "{" + user + R"(, "stream_options": {"include_usage": true}})"), "stream_options");
  EXPECT_EQ(rejected_param(chat, "{" + user + R"(, "frequency_penalty": 0.5})"), "frequency_penalty");
  EXPECT_EQ(rejected_param(chat, "{" + user + R"(, "tools": []})"), "tools");
  EXPECT_EQ(rejected_param(chat, "{" + user + R"(, "prompt": "x"})"), "prompt");  // a completions field
  EXPECT_EQ(rejected_param(completions, R"({"prompt": [1, 2]})"), "prompt");
  EXPECT_EQ(rejected_param(completions, R"({"max_tokens": 3})"), "prompt");
  EXPECT_EQ(rejected_param(completions, R"({"prompt": "a", "frequency_penalty": 0, "n": 1, "user": "u"})"), "");
}

TEST(OpenAiApiTest, ResponsesHaveTheOpenAiShape) {
  const auto chunk = text_chunk(Endpoint::kChatCompletions, "id", 7, "m", "", true);
  EXPECT_EQ(chunk["object"], "chat.completion.chunk");
  EXPECT_EQ(chunk["choices"][0]["delta"]["role"], "assistant");
  EXPECT_TRUE(chunk["choices"][0]["finish_reason"].is_null());
  const auto done = finish_chunk(Endpoint::kCompletions, "id", 7, "m", FinishReason::kLength);
  EXPECT_EQ(done["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(done["choices"][0]["text"], "");
  const auto full = full_response(Endpoint::kChatCompletions, "id", 7, "m", "hi", FinishReason::kStopToken, 3, 2);
  EXPECT_EQ(full["choices"][0]["message"]["content"], "hi");
  EXPECT_EQ(full["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(full["usage"]["total_tokens"], 5);
  // Bytes that are not UTF-8 (a model may emit any byte) still give valid JSON.
  EXPECT_EQ(to_wire(nlohmann::json("a\xff")), "\"a\xef\xbf\xbd\"");
  const auto error = ApiError(401, "no key").body();
  EXPECT_EQ(error["error"]["type"], "authentication_error");
  EXPECT_TRUE(error["error"]["param"].is_null());
}

}  // namespace
}  // namespace dsv3::serve
