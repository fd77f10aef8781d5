#include "serve/openai_api.h"

#include <random>

namespace dsv3::serve {

using json = nlohmann::json;

ApiError::ApiError(int http_status, std::string message, std::string param_name, std::string error_code)
    : std::runtime_error(std::move(message)), status(http_status), param(std::move(param_name)),
      code(std::move(error_code)) {}

json ApiError::body() const {
  const char* type = status == 401   ? "authentication_error"
                     : status == 404 ? "not_found_error"
                     : status == 503 ? "server_overloaded"
                     : status >= 500 ? "server_error"
                                     : "invalid_request_error";
  return {{"error",
           {{"message", what()},
            {"type", type},
            {"param", param.empty() ? json(nullptr) : json(param)},
            {"code", code.empty() ? json(nullptr) : json(code)}}}};
}

namespace {

[[noreturn]] void bad(const std::string& field, const std::string& why) {
  throw ApiError(400, "'" + field + "' " + why, field);
}

double number_in(const json& v, const std::string& field, double lo, double hi) {
  if (!v.is_number()) bad(field, "must be a number");
  const double x = v.get<double>();
  if (!(x >= lo && x <= hi)) bad(field, "must be in [" + json(lo).dump() + ", " + json(hi).dump() + "]");
  return x;
}

int64_t integer_in(const json& v, const std::string& field, int64_t lo, int64_t hi) {
  if (!v.is_number_integer()) bad(field, "must be an integer");
  if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(hi)) bad(field, "is too large");
  const int64_t x = v.get<int64_t>();
  if (x < lo || x > hi) bad(field, "must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return x;
}

std::string string_of(const json& v, const std::string& field) {
  if (!v.is_string()) bad(field, "must be a string");
  return v.get<std::string>();
}

// Chat content: a string, or an array of {"type": "text", "text": ...} parts.
std::string content_of(const json& v, const std::string& field) {
  if (v.is_string()) return v.get<std::string>();
  if (!v.is_array()) bad(field, "must be a string or an array of text parts");
  std::string text;
  for (size_t i = 0; i < v.size(); ++i) {
    const json& part = v[i];
    const std::string where = field + "[" + std::to_string(i) + "]";
    if (!part.is_object() || part.value("type", json()) != "text" || !part.contains("text"))
      bad(where, "must be a text part {\"type\": \"text\", \"text\": ...} (only text is supported)");
    text += string_of(part["text"], where + ".text");
  }
  return text;
}

std::vector<ChatMessage> messages_of(const json& v) {
  if (!v.is_array()) bad("messages", "must be an array");
  if (v.empty()) bad("messages", "must not be empty");
  std::vector<ChatMessage> messages;
  bool has_user = false;
  for (size_t i = 0; i < v.size(); ++i) {
    const std::string where = "messages[" + std::to_string(i) + "]";
    const json& m = v[i];
    if (!m.is_object()) bad(where, "must be an object");
    for (const auto& [key, value] : m.items())
      if (key != "role" && key != "content" && key != "name") bad(where + "." + key, "is not supported");
    if (!m.contains("role")) bad(where + ".role", "is required");
    std::string role = string_of(m["role"], where + ".role");
    if (role == "developer") role = "system";  // OpenAI's newer name for the system role
    if (role != "system" && role != "user" && role != "assistant")
      bad(where + ".role", "must be system, developer, user or assistant, not '" + role + "'");
    if (!m.contains("content") || m["content"].is_null()) bad(where + ".content", "is required");
    has_user |= role == "user";
    messages.push_back({role, content_of(m["content"], where + ".content")});
  }
  if (!has_user) bad("messages", "must contain a user message");
  return messages;
}

std::vector<std::string> stop_of(const json& v) {
  std::vector<std::string> stop;
  if (v.is_string()) {
    stop.push_back(v.get<std::string>());
  } else if (v.is_array()) {
    if (v.size() > 16) bad("stop", "may hold at most 16 strings");
    for (size_t i = 0; i < v.size(); ++i) stop.push_back(string_of(v[i], "stop[" + std::to_string(i) + "]"));
  } else {
    bad("stop", "must be a string or an array of strings");
  }
  for (const std::string& s : stop)
    if (s.empty()) bad("stop", "must not contain an empty string");
  return stop;
}

}  // namespace

ApiRequest parse_request(Endpoint endpoint, const std::string& body) {
  json j;
  try {
    j = json::parse(body);
  } catch (const json::parse_error& e) {
    throw ApiError(400, std::string("the request body is not valid JSON: ") + e.what());
  }
  if (!j.is_object()) throw ApiError(400, "the request body must be a JSON object");

  const bool chat = endpoint == Endpoint::kChatCompletions;
  ApiRequest r{endpoint, {}, {}, {}, SamplingParams{1.0f, 0, 1.0f, 0.0f, 1.0f, 0}, {}, false, false};
  bool has_seed = false, has_stream_options = false;
  for (const auto& [key, v] : j.items()) {
    if (v.is_null()) continue;  // clients send null for "not set"
    if (key == "model" || key == "user") {
      string_of(v, key);  // one model is served, whatever the name
    } else if (key == "prompt" && !chat) {
      if (v.is_array() && v.size() == 1 && v[0].is_string())
        r.prompt = v[0].get<std::string>();
      else if (v.is_string())
        r.prompt = v.get<std::string>();
      else
        bad(key, "must be a string (or an array of one string)");
    } else if (key == "messages" && chat) {
      r.messages = messages_of(v);
    } else if (key == "max_tokens" || (key == "max_completion_tokens" && chat)) {
      r.max_tokens = integer_in(v, key, 0, int64_t(1) << 40);
    } else if (key == "temperature") {
      r.sampling.temperature = float(number_in(v, key, 0.0, 2.0));
    } else if (key == "top_p") {
      r.sampling.top_p = float(number_in(v, key, 1e-6, 1.0));
    } else if (key == "top_k") {
      r.sampling.top_k = static_cast<int32_t>(integer_in(v, key, 0, int64_t(1) << 30));
    } else if (key == "min_p") {
      r.sampling.min_p = float(number_in(v, key, 0.0, 1.0));
    } else if (key == "repetition_penalty") {
      r.sampling.repetition_penalty = float(number_in(v, key, 1e-3, 100.0));
    } else if (key == "seed") {
      if (!v.is_number_integer()) bad(key, "must be an integer");
      r.sampling.seed = v.is_number_unsigned() ? v.get<uint64_t>() : static_cast<uint64_t>(v.get<int64_t>());
      has_seed = true;
    } else if (key == "stop") {
      r.stop = stop_of(v);
    } else if (key == "stream") {
      if (!v.is_boolean()) bad(key, "must be a boolean");
      r.stream = v.get<bool>();
    } else if (key == "stream_options") {
      if (!v.is_object()) bad(key, "must be an object");
      for (const auto& [option, value] : v.items()) {
        if (option != "include_usage") bad("stream_options." + option, "is not supported");
        if (!value.is_boolean()) bad("stream_options.include_usage", "must be a boolean");
        r.include_usage = value.get<bool>();
      }
      has_stream_options = true;
    } else if (key == "n") {
      if (!v.is_number_integer() || v.get<int64_t>() != 1) bad(key, "must be 1 (one choice per request)");
    } else if (key == "presence_penalty" || key == "frequency_penalty") {
      if (number_in(v, key, -2.0, 2.0) != 0.0) bad(key, "is not supported (only 0); see repetition_penalty");
    } else if (key == "logprobs" || key == "echo") {
      if (!v.is_boolean() || v.get<bool>()) bad(key, "is not supported");
    } else {
      throw ApiError(400, "unrecognized request argument '" + key + "'", key);
    }
  }
  if (chat && r.messages.empty()) bad("messages", "is required");
  if (!chat && !j.contains("prompt")) bad("prompt", "is required");
  if (has_stream_options && !r.stream) bad("stream_options", "is only allowed when 'stream' is true");
  if (!has_seed) r.sampling.seed = std::random_device{}();  // OpenAI: unseeded requests differ
  return r;
}

const char* finish_reason_name(FinishReason reason) { return reason == FinishReason::kLength ? "length" : "stop"; }

namespace {

json envelope(Endpoint endpoint, const std::string& id, int64_t created, const std::string& model, bool chunk) {
  const bool chat = endpoint == Endpoint::kChatCompletions;
  return {{"id", id},
          {"object", chat ? (chunk ? "chat.completion.chunk" : "chat.completion") : "text_completion"},
          {"created", created},
          {"model", model},
          {"system_fingerprint", "dsv3"}};
}

json choice(Endpoint endpoint, bool chunk, const std::string& text, bool first, const json& finish) {
  if (endpoint == Endpoint::kCompletions)
    return {{"index", 0}, {"text", text}, {"logprobs", nullptr}, {"finish_reason", finish}};
  json message = json::object();
  if (!chunk || first) message["role"] = "assistant";
  if (!chunk || !text.empty() || first) message["content"] = text;
  return {{"index", 0}, {chunk ? "delta" : "message", message}, {"logprobs", nullptr}, {"finish_reason", finish}};
}

}  // namespace

json text_chunk(Endpoint endpoint, const std::string& id, int64_t created, const std::string& model,
                const std::string& text, bool first) {
  json j = envelope(endpoint, id, created, model, true);
  j["choices"] = json::array({choice(endpoint, true, text, first, nullptr)});
  return j;
}

json finish_chunk(Endpoint endpoint, const std::string& id, int64_t created, const std::string& model,
                  FinishReason reason) {
  json j = envelope(endpoint, id, created, model, true);
  j["choices"] = json::array({choice(endpoint, true, "", false, finish_reason_name(reason))});
  return j;
}

json usage(int64_t prompt_tokens, int64_t completion_tokens) {
  return {{"prompt_tokens", prompt_tokens},
          {"completion_tokens", completion_tokens},
          {"total_tokens", prompt_tokens + completion_tokens}};
}

json usage_chunk(Endpoint endpoint, const std::string& id, int64_t created, const std::string& model,
                 int64_t prompt_tokens, int64_t completion_tokens) {
  json j = envelope(endpoint, id, created, model, true);
  j["choices"] = json::array();
  j["usage"] = usage(prompt_tokens, completion_tokens);
  return j;
}

json full_response(Endpoint endpoint, const std::string& id, int64_t created, const std::string& model,
                   const std::string& text, FinishReason reason, int64_t prompt_tokens, int64_t completion_tokens) {
  json j = envelope(endpoint, id, created, model, false);
  j["choices"] = json::array({choice(endpoint, false, text, false, finish_reason_name(reason))});
  j["usage"] = usage(prompt_tokens, completion_tokens);
  return j;
}

std::string to_wire(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

}  // namespace dsv3::serve
