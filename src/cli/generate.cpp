// dsv3 generate: streams a continuation of a prompt (or a chat reply) to stdout.
#include <cstdio>

#include "base/error.h"
#include "base/thread_pool.h"
#include "cli/commands.h"
#include "formats/model_dir.h"
#include "infer/generate.h"
#include "infer/utf8_stream.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace dsv3::cli {

namespace {

struct GenerateOptions {
  std::string model, prompt, speculative = "none";
  int64_t max_new = 128;
  SamplingParams sampling;
  bool chat = false, stats = false;
  size_t threads = 0;
};

void run(const GenerateOptions& o) {
  if (o.speculative != "none")
    fail("--speculative ", o.speculative, " is not available yet; use --speculative none");
  ThreadPool pool(o.threads);
  LoadedModel loaded = load_model(o.model, pool);
  Tokenizer tokenizer = Tokenizer::load(o.model);
  std::vector<int32_t> ids;
  if (o.chat) {
    if (!is_deepseek_chat_template(tokenizer.chat_template()))
      fail("the tokenizer's chat_template is not the DeepSeek-V3 format (", o.model, "/tokenizer_config.json)");
    ids = tokenizer.encode(render_deepseek_chat({{"user", o.prompt}}, true, tokenizer.bos_token()), false);
  } else {
    ids = tokenizer.encode(o.prompt, tokenizer.add_bos_token());
  }
  Sampler sampler(o.sampling, loaded.model->config().vocab_size);
  std::vector<int32_t> stops;
  if (tokenizer.eos_id()) stops.push_back(*tokenizer.eos_id());
  Utf8Stream stream;
  std::string bytes;
  const GenerationStats stats = generate(*loaded.model, ids, o.max_new, sampler, stops, [&](int32_t token) {
    if (tokenizer.eos_id() && token == *tokenizer.eos_id()) return;  // the end marker is not text
    bytes.clear();
    tokenizer.append_token_bytes(token, bytes);
    const std::string text = stream.push(bytes);
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
  });
  const std::string rest = stream.flush();
  std::fwrite(rest.data(), 1, rest.size(), stdout);
  std::fputc('\n', stdout);
  if (o.stats)
    std::fprintf(stderr, "prefill: %lld tokens, %.1f tok/s; decode: %lld tokens, %.1f tok/s; speculation: none\n",
                 (long long)stats.prompt_tokens, double(stats.prompt_tokens) / stats.prefill_seconds,
                 (long long)stats.generated_tokens,
                 stats.decode_seconds > 0 ? double(stats.generated_tokens) / stats.decode_seconds : 0.0);
}

}  // namespace

void add_generate_command(CLI::App& app) {
  auto o = std::make_shared<GenerateOptions>();
  CLI::App* cmd = app.add_subcommand("generate", "Stream a continuation of a prompt to stdout");
  cmd->add_option("-m,--model", o->model, "Model directory (with tokenizer files)")->required();
  cmd->add_option("-p,--prompt", o->prompt, "The prompt")->required();
  cmd->add_option("-n,--n-predict", o->max_new, "Tokens to generate at most")->capture_default_str();
  cmd->add_option("--temp", o->sampling.temperature, "Temperature (0: greedy)")->capture_default_str();
  cmd->add_option("--top-p", o->sampling.top_p, "Nucleus sampling mass (1: off)")->capture_default_str();
  cmd->add_option("--top-k", o->sampling.top_k, "Sample among the k best tokens (0: off)")->capture_default_str();
  cmd->add_option("--min-p", o->sampling.min_p, "Drop tokens below min-p x the best token's probability")
      ->capture_default_str();
  cmd->add_option("--repeat-penalty", o->sampling.repetition_penalty, "Penalty on tokens already seen (1: off)")
      ->capture_default_str();
  cmd->add_option("--seed", o->sampling.seed, "Sampling seed")->capture_default_str();
  cmd->add_option("--speculative", o->speculative, "Speculative decoding: none (mtp is not available yet)")
      ->capture_default_str();
  cmd->add_flag("--chat", o->chat, "Apply the chat template to the prompt as one user message");
  cmd->add_flag("--stats", o->stats, "Print prefill and decode speed to stderr");
  cmd->add_option("-t,--threads", o->threads, "Worker threads (default: all hardware threads)")
      ->check(CLI::Range(0, 1024));
  cmd->callback([o] { run(*o); });
}

}  // namespace dsv3::cli
