// The DeepSeek-V3 chat format, written natively instead of running the Jinja template:
//   {bos}{system prompts joined by "\n\n"}<｜User｜>{user}<｜Assistant｜>{reply}<｜end▁of▁sentence｜>...
// and, for a generation prompt, a final <｜Assistant｜>. This is what the model's own
// chat_template renders for system/user/assistant conversations (tool calls aside).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace dsv3 {

struct ChatMessage {
  std::string role;  // "system", "user" or "assistant"
  std::string content;
};

// Throws Error for a role other than system/user/assistant.
std::string render_deepseek_chat(const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                                 const std::string& bos_token);

// Whether a tokenizer_config.json chat_template is the DeepSeek-V3 format above.
bool is_deepseek_chat_template(const std::string& chat_template);

// Renders and encodes conversations for one model's tokenizer, whose chat_template is
// checked once to be the DeepSeek-V3 format (the error names model_dir's tokenizer_config.json).
class ChatEncoder {
 public:
  ChatEncoder(Tokenizer& tokenizer, const std::string& model_dir);
  // The rendered text, BOS included (the template writes it).
  std::string render(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const;
  std::vector<int32_t> encode(const std::vector<ChatMessage>& messages, bool add_generation_prompt);

 private:
  Tokenizer& tokenizer_;
};

}  // namespace dsv3
