#include "tokenizer/chat_template.h"

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

}  // namespace dsv3
