// dsv3 generate: streams a continuation of a prompt (or a chat reply) to stdout.
#include <algorithm>
#include <cstdio>

#include "base/error.h"
#include "base/thread_pool.h"
#include "cli/commands.h"
#include "cli/decoding_options.h"
#include "cli/expert_parallel.h"
#include "cli/print.h"
#include "formats/model_dir.h"
#include "infer/generate.h"
#include "infer/text_stream.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace dsv3::cli {

namespace {

struct GenerateOptions {
  std::string model, prompt;
  int64_t max_new = 128;
  std::vector<std::string> stop;
  DecodingOptions decoding;
  bool chat = false, stats = false;
  int64_t ep = 1;
};

void run(const GenerateOptions& o) {
  ThreadPool pool(o.decoding.threads);
  LoadedModel loaded = load_model(o.model, pool);
  Model& model = *loaded.model;
  configure_model(model, o.decoding);
  apply_expert_parallelism(model, o.ep);
  Tokenizer tokenizer = Tokenizer::load(tokenizer_dir(o.model));
  std::vector<int32_t> ids;
  if (o.chat) {
    ids = ChatEncoder(tokenizer, o.model).encode({{"user", o.prompt}}, true);
  } else {
    ids = tokenizer.encode(o.prompt, tokenizer.add_bos_token());
  }
  GenerationOptions options;
  options.max_new = o.max_new;
  options.drafts = drafts_per_step(o.decoding, model);
  if (tokenizer.eos_id()) options.stop_ids.push_back(*tokenizer.eos_id());
  // Past the model's context, generate() names both lengths in its error.
  const int64_t context = std::min(static_cast<int64_t>(ids.size()) + std::max<int64_t>(o.max_new, 0),
                                   model.config().max_position_embeddings);
  Generator generator(model, context, options.drafts);
  Sampler sampler(o.decoding.sampling, model.config().vocab_size);
  TextStream text(tokenizer, o.stop);
  const GenerationStats stats = generator.generate(ids, options, sampler, [&](int32_t token) {
    print_now(text.push(token));
    return !text.stopped();
  });
  print_now(text.finish() + "\n");
  if (o.stats) {
    std::fprintf(stderr, "prefill: %lld tokens, %.1f tok/s; decode: %lld tokens, %.1f tok/s, %lld passes",
                 (long long)stats.prompt_tokens, double(stats.prompt_tokens) / stats.prefill_seconds,
                 (long long)stats.generated_tokens, stats.decode_tokens_per_second(), (long long)stats.decode_passes);
    if (options.drafts > 0)
      std::fprintf(stderr, "; speculation: mtp, %lld draft(s) per step, acceptance %.1f%% (%lld / %lld)\n",
                   (long long)options.drafts, 100 * stats.acceptance(), (long long)stats.accepted,
                   (long long)stats.drafted);
    else
      std::fprintf(stderr, "; speculation: none\n");
  }
}

}  // namespace

void add_generate_command(CLI::App& app) {
  auto o = std::make_shared<GenerateOptions>();
  CLI::App* cmd = app.add_subcommand("generate", "Stream a continuation of a prompt to stdout");
  cmd->add_option("-m,--model", o->model, "Model directory (with tokenizer files)")->required();
  cmd->add_option("-p,--prompt", o->prompt, "The prompt")->required();
  cmd->add_option("-n,--n-predict", o->max_new, "Tokens to generate at most")->capture_default_str();
  cmd->add_option("--stop", o->stop, "Stop before this text (repeatable); it is not printed");
  add_decoding_options(*cmd, o->decoding);
  cmd->add_flag("--chat", o->chat, "Apply the chat template to the prompt as one user message");
  cmd->add_flag("--stats", o->stats, "Print prefill and decode speed and the MTP acceptance rate to stderr");
  add_ep_option(cmd, o->ep);
  cmd->callback([o] { run(*o); });
}

}  // namespace dsv3::cli
