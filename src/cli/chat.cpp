// dsv3 chat: a multi-turn conversation on standard input/output with the model's chat
// template. Each turn re-renders the whole conversation (system prompt, earlier turns,
// the new message) and streams the reply; when it no longer fits the context, the oldest
// turns are dropped. Commands: /reset (forget the conversation), /exit (or end of input).
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <iostream>

#include "base/error.h"
#include "base/thread_pool.h"
#include "cli/commands.h"
#include "cli/decoding_options.h"
#include "cli/print.h"
#include "formats/model_dir.h"
#include "infer/generate.h"
#include "infer/text_stream.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace dsv3::cli {

namespace {

struct ChatOptions {
  std::string model, system;
  int64_t max_new = 512, context = 4096;
  DecodingOptions decoding;
  bool stats = false;
};

void run(const ChatOptions& o) {
  ThreadPool pool(o.decoding.threads);
  LoadedModel loaded = load_model(o.model, pool);
  Model& model = *loaded.model;
  configure_model(model, o.decoding);
  Tokenizer tokenizer = Tokenizer::load(tokenizer_dir(o.model));
  ChatEncoder chat_encoder(tokenizer, o.model);
  const int64_t context = std::min(o.context, model.config().max_position_embeddings);
  GenerationOptions options;
  options.drafts = drafts_per_step(o.decoding, model);
  if (tokenizer.eos_id()) options.stop_ids.push_back(*tokenizer.eos_id());
  Generator generator(model, context, options.drafts);
  Sampler sampler(o.decoding.sampling, model.config().vocab_size);

  const bool interactive = isatty(STDIN_FILENO);
  std::vector<ChatMessage> conversation;
  auto reset = [&] {
    conversation.clear();
    if (!o.system.empty()) conversation.push_back({"system", o.system});
  };
  reset();
  if (interactive)
    std::fprintf(stderr, "dsv3 chat: %s, context %lld tokens. /reset forgets the conversation, /exit quits.\n",
                 o.model.c_str(), (long long)context);
  std::string line;
  while (true) {
    if (interactive) std::fprintf(stderr, "> ");
    if (!std::getline(std::cin, line) || line == "/exit") break;
    if (line == "/reset") {
      reset();
      if (interactive) std::fprintf(stderr, "(conversation forgotten)\n");
      continue;
    }
    if (line.empty()) continue;
    conversation.push_back({"user", line});
    // Drop the oldest turns until the conversation and a reply of at least 1 token fit.
    const size_t first_turn = o.system.empty() ? 0 : 1;
    std::vector<int32_t> ids;
    while (true) {
      ids = chat_encoder.encode(conversation, true);
      if (static_cast<int64_t>(ids.size()) < context || conversation.size() - first_turn <= 1) break;
      conversation.erase(conversation.begin() + static_cast<ptrdiff_t>(first_turn),
                         conversation.begin() + static_cast<ptrdiff_t>(first_turn) + 2);
    }
    if (static_cast<int64_t>(ids.size()) >= context) {
      std::fprintf(stderr, "dsv3: error: the message needs %zu tokens and the context holds %lld (--ctx)\n",
                   ids.size(), (long long)context);
      conversation.pop_back();
      continue;
    }
    options.max_new = std::min(o.max_new, context - static_cast<int64_t>(ids.size()));
    TextStream text(tokenizer, {});
    std::string reply;
    const GenerationStats stats = generator.generate(ids, options, sampler, [&](int32_t token) {
      const std::string shown = text.push(token);
      reply += shown;
      print_now(shown);
      return true;
    });
    const std::string rest = text.finish();
    reply += rest;
    print_now(rest + "\n");
    conversation.push_back({"assistant", reply});
    if (o.stats)
      std::fprintf(stderr, "(%lld prompt tokens, %lld generated at %.1f tok/s%s)\n", (long long)stats.prompt_tokens,
                   (long long)stats.generated_tokens, stats.decode_tokens_per_second(),
                   options.drafts ? (", MTP acceptance " + std::to_string(int(100 * stats.acceptance())) + "%").c_str()
                                  : "");
  }
}

}  // namespace

void add_chat_command(CLI::App& app) {
  auto o = std::make_shared<ChatOptions>();
  CLI::App* cmd = app.add_subcommand("chat", "Multi-turn chat on standard input with the model's chat template");
  cmd->add_option("-m,--model", o->model, "Model directory (with tokenizer files)")->required();
  cmd->add_option("--system", o->system, "System prompt");
  cmd->add_option("-n,--n-predict", o->max_new, "Tokens per reply at most")->capture_default_str();
  cmd->add_option("--ctx", o->context, "Context in tokens (at most the model's max_position_embeddings)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t(2), int64_t(1) << 30));
  add_decoding_options(*cmd, o->decoding);
  cmd->add_flag("--stats", o->stats, "Print speed and MTP acceptance after each reply");
  cmd->callback([o] { run(*o); });
}

}  // namespace dsv3::cli
