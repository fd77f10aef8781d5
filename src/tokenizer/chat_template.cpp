#include "tokenizer/chat_template.h"

#include <filesystem>

#include "base/error.h"

namespace dsv3 {

namespace {
constexpr const char* kUser = "<｜User｜>";
constexpr const char* kAssistant = "<｜Assistant｜>";
constexpr const char* kEndOfSentence = "<｜end▁of▁sentence｜>";
}  // namespace

std::string render_deepseek_chat(const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                                 const std::string& bos_token) {
  // System prompts go first, wherever they appear, joined by a blank line.
  std::string system;
  bool first_system = true;
  for (const ChatMessage& m : messages) {
    if (m.role != "system") continue;
    if (!first_system) system += "\n\n";
    system += m.content;
    first_system = false;
  }
  std::string out = bos_token + system;
  for (const ChatMessage& m : messages) {
    if (m.role == "user") {
      out += kUser + m.content;
    } else if (m.role == "assistant") {
      out += kAssistant + m.content + kEndOfSentence;
    } else if (m.role != "system") {
      fail("chat message role '", m.role, "' is not supported (system, user, assistant)");
    }
  }
  if (add_generation_prompt) out += kAssistant;
  return out;
}

bool is_deepseek_chat_template(const std::string& chat_template) {
  return chat_template.find(kUser) != std::string::npos && chat_template.find(kAssistant) != std::string::npos;
}

ChatEncoder::ChatEncoder(Tokenizer& tokenizer, const std::string& model_dir) : tokenizer_(tokenizer) {
  if (!is_deepseek_chat_template(tokenizer.chat_template()))
    fail("the tokenizer's chat_template is not the DeepSeek-V3 format (",
         (std::filesystem::path(model_dir) / "tokenizer_config.json").string(), ")");
}

std::string ChatEncoder::render(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const {
  return render_deepseek_chat(messages, add_generation_prompt, tokenizer_.bos_token());
}

std::vector<int32_t> ChatEncoder::encode(const std::vector<ChatMessage>& messages, bool add_generation_prompt) {
  return tokenizer_.encode(render(messages, add_generation_prompt), false);
}

}  // namespace dsv3
