// dsv3 quickstart: the main job with no arguments. Prepares the default corpus (the King
// James Bible from Debian's bible-kjv), trains a tokenizer and a small DeepSeek-V3-architecture
// model (MLA, MoE with groups and aux-free balancing, MTP) for about five minutes, then
// generates from it. Running it again continues or reuses the run in runs/quickstart/.
#include <cstdio>
#include <filesystem>
#include <memory>

#include "base/atomic_file.h"
#include "base/error.h"
#include "base/thread_pool.h"
#include "cli/commands.h"
#include "cli/print.h"
#include "formats/model_dir.h"
#include "infer/generate.h"
#include "infer/text_stream.h"
#include "tokenizer/tokenizer.h"
#include "train/trainer.h"

namespace dsv3::cli {

namespace {

namespace fs = std::filesystem;

// The KJV text, extracted once with Debian's `bible` program.
std::string prepare_corpus(const fs::path& dir) {
  const fs::path file = dir / "kjv.txt";
  if (fs::exists(file)) return dir.string();
  fs::create_directories(dir);
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen("bible 'Gen1:1-Rev22:21' 2>/dev/null", "r"), pclose);
  std::string text;
  char buffer[65536];
  size_t n;
  while (pipe && (n = std::fread(buffer, 1, sizeof buffer, pipe.get())) > 0) text.append(buffer, n);
  if (text.size() < 1000000)
    fail("cannot extract the King James Bible: install Debian's bible-kjv and bible-kjv-text (scripts/setup.sh)");
  AtomicFileWriter out(file.string());
  out.write(text.data(), text.size());
  out.commit();
  return dir.string();
}

void run(const std::string& dir, size_t threads) {
  const fs::path root(dir);
  TrainOptions o;
  o.data = {prepare_corpus(root / "data")};
  o.out = (root / "run").string();
  o.steps = 240;          // about four minutes on 2 cores (222 s on a 2-core EPYC)
  o.warmup = 24;
  o.time_limit = 330;     // stops early (and saves) on a slower machine
  o.eval_every = 40;
  o.save_every = 40;
  o.threads = threads;
  o.resume = fs::exists(fs::path(o.out) / "latest");
  const std::string checkpoint = train(o);
  std::string plots = "(no plots: " ;
  try {
    plot_run(o.out);
    plots = o.out + "/plots/";
  } catch (const Error& e) {
    plots += std::string(e.what()) + ")";
  }

  ThreadPool pool(threads);
  LoadedModel loaded = load_model(checkpoint, pool);
  Tokenizer tokenizer = Tokenizer::load(checkpoint);
  const std::string prompt = "In the beginning";
  const std::vector<int32_t> ids = tokenizer.encode(prompt, tokenizer.add_bos_token());
  std::printf("\n--- greedy sample from %s, MTP speculative decoding ---\n%s", checkpoint.c_str(), prompt.c_str());
  Model& model = *loaded.model;
  GenerationOptions options;
  options.max_new = 80;
  options.drafts = model.has_mtp() ? 1 : 0;
  if (tokenizer.eos_id()) options.stop_ids.push_back(*tokenizer.eos_id());
  Generator generator(model, static_cast<int64_t>(ids.size()) + options.max_new, options.drafts);
  Sampler greedy({0.0f, 0, 1.0f, 0.0f, 1.0f, 0}, model.config().vocab_size);
  TextStream text(tokenizer, {});
  const GenerationStats stats = generator.generate(ids, options, greedy, [&](int32_t token) {
    print_now(text.push(token));
    return true;
  });
  print_now(text.finish());
  std::printf("\n---\nprefill %lld tokens at %.1f tok/s, decode %lld tokens at %.1f tok/s in %lld passes; "
              "MTP acceptance %.1f%% (%lld / %lld drafts)\n",
              (long long)stats.prompt_tokens, double(stats.prompt_tokens) / stats.prefill_seconds,
              (long long)stats.generated_tokens, stats.decode_tokens_per_second(), (long long)stats.decode_passes,
              100 * stats.acceptance(), (long long)stats.accepted, (long long)stats.drafted);
  std::printf("checkpoint: %s (dsv3 logits -m %s ...), metrics: %s/metrics.jsonl, plots: %s\n", checkpoint.c_str(),
              checkpoint.c_str(), o.out.c_str(), plots.c_str());
}

}  // namespace

void add_quickstart_command(CLI::App& app) {
  auto dir = std::make_shared<std::string>("runs/quickstart");
  auto threads = std::make_shared<size_t>(0);
  CLI::App* cmd = app.add_subcommand("quickstart", "Train a small model on the KJV Bible for ~5 minutes, then generate");
  cmd->add_option("--dir", *dir, "Where the corpus and the run go")->capture_default_str();
  cmd->add_option("-t,--threads", *threads, "Worker threads (default: all hardware threads)")->check(CLI::Range(0, 1024));
  cmd->callback([dir, threads] { run(*dir, *threads); });
}

}  // namespace dsv3::cli
