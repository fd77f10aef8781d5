// dsv3 tokenizer-train: trains a byte-level BPE tokenizer (DeepSeek-V3's pre-tokenizer and
// special tokens) on text files and writes tokenizer.json + tokenizer_config.json.
#include <cstdio>

#include "base/clock.h"
#include "base/error.h"
#include "base/text_files.h"
#include "base/thread_pool.h"
#include "cli/commands.h"
#include "tokenizer/bpe_trainer.h"

namespace dsv3::cli {

namespace {

struct TokenizerTrainOptions {
  std::vector<std::string> data;
  std::string out;
  BpeTrainerOptions trainer;
  size_t threads = 0;
};

void run(const TokenizerTrainOptions& o) {
  const auto start = Clock::now();
  auto elapsed = [&] { return seconds_since(start); };
  const std::vector<std::string> texts = read_text_files(o.data, "--data");
  size_t bytes = 0;
  for (const std::string& t : texts) bytes += t.size();
  if (bytes == 0) fail("no text to train on (--data)");
  std::fprintf(stderr, "tokenizer-train: %zu files, %.1f MB; training a %lld-token vocabulary\n", texts.size(),
               double(bytes) / 1e6, static_cast<long long>(o.trainer.vocab_size));
  ThreadPool pool(o.threads);
  double last_report = 0;
  const BpeTrainingResult result = train_bpe(texts, o.trainer, pool, [&](int64_t done, int64_t target) {
    if (elapsed() - last_report < 2.0) return;
    last_report = elapsed();
    std::fprintf(stderr, "tokenizer-train: %lld / %lld merges, %.1f s\n", static_cast<long long>(done),
                 static_cast<long long>(target), last_report);
  });
  write_tokenizer_files(o.out, result);
  std::fprintf(stderr, "tokenizer-train: %zu merges from %lld distinct words in %.1f s%s -> %s\n", result.merges.size(),
               static_cast<long long>(result.words), elapsed(),
               result.stopped_early ? " (stopped early: no pair reaches --min-frequency)" : "", o.out.c_str());
}

}  // namespace

void add_tokenizer_train_command(CLI::App& app) {
  auto opts = std::make_shared<TokenizerTrainOptions>();
  CLI::App* cmd = app.add_subcommand("tokenizer-train", "Train a byte-level BPE tokenizer in the DeepSeek-V3 format");
  cmd->add_option("--data", opts->data, "Text files or directories (read recursively)")->required();
  cmd->add_option("--vocab-size", opts->trainer.vocab_size, "Vocabulary size, special and byte tokens included")
      ->capture_default_str();
  cmd->add_option("--min-frequency", opts->trainer.min_frequency, "Stop when the best pair is rarer than this")
      ->capture_default_str();
  cmd->add_option("-o,--out", opts->out, "Output directory for tokenizer.json and tokenizer_config.json")->required();
  cmd->add_option("-t,--threads", opts->threads, "Worker threads (default: all hardware threads)")
      ->check(CLI::Range(0, 1024));
  cmd->callback([opts] { run(*opts); });
}

}  // namespace dsv3::cli
