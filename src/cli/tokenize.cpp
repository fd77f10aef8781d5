// dsv3 tokenize: text -> token ids (or ids -> text) with a model's tokenizer files.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>

#include "base/clock.h"
#include "base/error.h"
#include "cli/commands.h"
#include "cli/token_ids.h"
#include "formats/json_file.h"
#include "formats/model_dir.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace dsv3::cli {

namespace {

struct TokenizeOptions {
  std::string model;
  std::string text;
  std::string file;
  std::string chat_file;
  bool decode = false;
  bool chat = false;
  bool no_bos = false;
  bool render = false;
  bool no_generation_prompt = false;
  bool stats = false;
};

std::string read_all(std::istream& in) { return std::string(std::istreambuf_iterator<char>(in), {}); }

std::string read_input(const TokenizeOptions& o) {
  if (!o.file.empty() && !o.text.empty()) fail("give TEXT or --file, not both (command line)");
  if (!o.file.empty()) {
    std::ifstream in(o.file, std::ios::binary);
    if (!in) fail("cannot read (", o.file, ")");
    return read_all(in);
  }
  if (o.text == "-") return read_all(std::cin);
  return o.text;
}

std::vector<ChatMessage> read_conversation(const std::string& path) {
  const nlohmann::json j = read_json_file(path);
  if (!j.is_array()) fail("conversation must be a JSON array of {role, content} (", path, ")");
  std::vector<ChatMessage> messages;
  for (const auto& m : j) {
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string() || !m.contains("content") ||
        !m["content"].is_string())
      fail("conversation message needs string role and content (", path, ")");
    messages.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
  }
  return messages;
}

void run(const TokenizeOptions& o) {
  Tokenizer tokenizer = Tokenizer::load(tokenizer_dir(o.model));
  const bool chat = o.chat || !o.chat_file.empty();
  if (o.decode) {
    const std::string bytes = tokenizer.decode(parse_token_ids(read_input(o), "--decode input", false));
    std::fwrite(bytes.data(), 1, bytes.size(), stdout);
    return;
  }

  std::string text;
  bool add_bos = tokenizer.add_bos_token() && !o.no_bos;
  if (chat) {
    const auto messages = o.chat_file.empty() ? std::vector<ChatMessage>{{"user", read_input(o)}}
                                              : read_conversation(o.chat_file);
    text = ChatEncoder(tokenizer, o.model).render(messages, !o.no_generation_prompt);
    add_bos = false;  // the template writes BOS itself
    if (o.render) {
      std::fwrite(text.data(), 1, text.size(), stdout);
      return;
    }
  } else {
    text = read_input(o);
  }

  const auto start = Clock::now();
  const std::vector<int32_t> ids = tokenizer.encode(text, add_bos);
  const double seconds = seconds_since(start);
  std::string line;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) line += ' ';
    line += std::to_string(ids[i]);
  }
  line += '\n';
  std::fwrite(line.data(), 1, line.size(), stdout);
  if (o.stats)
    std::fprintf(stderr, "tokenize: %zu bytes -> %zu tokens in %.4f s (%.2f MB/s)\n", text.size(), ids.size(), seconds,
                 double(text.size()) / 1e6 / seconds);
}

}  // namespace

void add_tokenize_command(CLI::App& app) {
  auto opts = std::make_shared<TokenizeOptions>();
  CLI::App* cmd = app.add_subcommand("tokenize", "Print the token ids of a text (or, with --decode, the text of ids)");
  cmd->add_option("-m,--model", opts->model, "Model directory (tokenizer.json, tokenizer_config.json)")->required();
  cmd->add_option("text", opts->text, "The text ('-' reads standard input)");
  cmd->add_option("--file", opts->file, "Read the text from this file");
  cmd->add_flag("--decode", opts->decode, "Read token ids and print their text");
  cmd->add_flag("--chat", opts->chat, "Apply the chat template to the text as one user message first");
  cmd->add_option("--chat-file", opts->chat_file, "Apply the chat template to a JSON array of {role, content}");
  cmd->add_flag("--render", opts->render, "With --chat/--chat-file: print the rendered text instead of ids");
  cmd->add_flag("--no-generation-prompt", opts->no_generation_prompt,
                "With --chat/--chat-file: do not end with the assistant prompt");
  cmd->add_flag("--no-bos", opts->no_bos, "Do not prepend BOS even if add_bos_token is set");
  cmd->add_flag("--stats", opts->stats, "Print the encoding time and speed to stderr");
  cmd->callback([opts] { run(*opts); });
}

}  // namespace dsv3::cli
