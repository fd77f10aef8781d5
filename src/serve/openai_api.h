// The OpenAI wire format for /v1/completions and /v1/chat/completions: request bodies
// parsed and checked into plain data, and the response and stream-chunk objects. No I/O
// here, so every rule is testable without a socket.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "infer/batch_generator.h"
#include "infer/sampler.h"
#include "tokenizer/chat_template.h"

namespace dsv3::serve {

// An error in the OpenAI error shape: {"error": {"message", "type", "param", "code"}}.
struct ApiError : std::runtime_error {
  ApiError(int http_status, std::string message, std::string param_name = "", std::string error_code = "");
  nlohmann::json body() const;

  int status;
  std::string param, code;
};

enum class Endpoint { kCompletions, kChatCompletions };

struct ApiRequest {
  Endpoint endpoint;
  std::string prompt;                 // completions
  std::vector<ChatMessage> messages;  // chat completions
  std::optional<int64_t> max_tokens;  // absent: completions 16, chat the rest of the context
  SamplingParams sampling;            // OpenAI defaults: temperature 1, top_p 1
  std::vector<std::string> stop;
  bool stream = false, include_usage = false;
};

// Parses a request body. Throws ApiError (400) for malformed JSON, a wrong type or value,
// an unknown field, or no prompt / no messages; the message names the field.
ApiRequest parse_request(Endpoint endpoint, const std::string& body);

// "stop" or "length" (a stop token, a stop string: "stop").
const char* finish_reason_name(FinishReason reason);

// One stream chunk carrying text (chat: a delta; the first one also carries the role).
nlohmann::json text_chunk(Endpoint endpoint, const std::string& id, int64_t created, const std::string& model,
                          const std::string& text, bool first);
// The last choice chunk, with the finish reason and no text.
nlohmann::json finish_chunk(Endpoint endpoint, const std::string& id, int64_t created, const std::string& model,
                            FinishReason reason);
nlohmann::json usage(int64_t prompt_tokens, int64_t completion_tokens);
// The usage chunk of stream_options.include_usage: no choices.
nlohmann::json usage_chunk(Endpoint endpoint, const std::string& id, int64_t created, const std::string& model,
                           int64_t prompt_tokens, int64_t completion_tokens);
// The whole (non-streaming) response.
nlohmann::json full_response(Endpoint endpoint, const std::string& id, int64_t created, const std::string& model,
                             const std::string& text, FinishReason reason, int64_t prompt_tokens,
                             int64_t completion_tokens);

// JSON text for the wire: generated text may hold bytes that are not UTF-8 (a model can
// emit any byte); those become U+FFFD instead of failing the response.
std::string to_wire(const nlohmann::json& j);

}  // namespace dsv3::serve
