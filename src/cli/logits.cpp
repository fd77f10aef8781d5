// dsv3 logits: the main model's (and optionally the MTP module's) logits at every position.
#include <algorithm>
#include <cstdio>
#include <vector>

#include "base/clock.h"
#include "base/error.h"
#include "base/thread_pool.h"
#include "cli/commands.h"
#include "cli/expert_parallel.h"
#include "cli/token_ids.h"
#include "formats/model_dir.h"
#include "dist/communicator.h"
#include "formats/npy.h"

namespace dsv3::cli {

namespace {

struct LogitsOptions {
  std::string model;
  std::string ids;
  std::string out;
  std::string mtp_out;
  bool incremental = false;
  size_t threads = 0;
  int64_t ep = 1;
};

// One line with the five most likely next tokens, so a run shows what the model predicts.
void print_top_tokens(const char* label, const float* logits, int64_t V) {
  std::vector<int64_t> order(static_cast<size_t>(V));
  for (int64_t i = 0; i < V; ++i) order[i] = i;
  const int64_t k = std::min<int64_t>(5, V);
  std::partial_sort(order.begin(), order.begin() + k, order.end(),
                    [&](int64_t a, int64_t b) { return logits[a] > logits[b]; });
  std::fprintf(stderr, "  %s, top-%lld token ids:", label, static_cast<long long>(k));
  for (int64_t i = 0; i < k; ++i) std::fprintf(stderr, " %lld (%.4f)", static_cast<long long>(order[i]), logits[order[i]]);
  std::fprintf(stderr, "\n");
}

void run(const LogitsOptions& o) {
  const std::vector<int32_t> ids = parse_token_ids(o.ids, "--ids", true);
  ThreadPool pool(o.threads);
  LoadedModel loaded = load_model(o.model, pool);
  Model& model = *loaded.model;
  apply_expert_parallelism(model, o.ep);
  const bool writer = Communicator::world().is_root();
  const ModelConfig& c = model.config();
  const int64_t T = static_cast<int64_t>(ids.size());
  if (T > c.max_position_embeddings)
    fail(T, " tokens exceed the model's context of ", c.max_position_embeddings, " (max_position_embeddings)");
  for (int32_t id : ids)
    if (id >= c.vocab_size) fail("token id ", id, " is outside the vocabulary [0, ", c.vocab_size, ") (--ids)");
  if (!o.mtp_out.empty() && !model.has_mtp())
    fail("the model has no MTP layer (num_nextn_predict_layers is 0) (--mtp)");

  const int64_t d = c.hidden_size, V = c.vocab_size;
  std::vector<float> hidden(static_cast<size_t>(T * d)), logits(static_cast<size_t>(T * V));
  KvCache cache = model.make_cache(T);
  const auto start = Clock::now();
  if (o.incremental) {
    for (int64_t t = 0; t < T; ++t) model.forward(&ids[t], 1, cache, &hidden[t * d], &logits[t * V]);
  } else {
    model.forward(ids.data(), T, cache, hidden.data(), logits.data());
  }
  const double main_seconds = seconds_since(start);
  if (writer) write_npy_f32(o.out, logits.data(), {T, V});

  if (!o.mtp_out.empty()) {
    const int64_t rows = T - 1;
    std::vector<float> mtp_logits(static_cast<size_t>(rows * V));
    KvCache mtp_cache = model.make_mtp_cache(std::max<int64_t>(rows, 1));
    if (o.incremental) {
      for (int64_t i = 0; i < rows; ++i) model.forward_mtp(&ids[i + 1], &hidden[i * d], 1, mtp_cache, &mtp_logits[i * V]);
    } else if (rows > 0) {
      model.forward_mtp(ids.data() + 1, hidden.data(), rows, mtp_cache, mtp_logits.data());
    }
    if (writer) write_npy_f32(o.mtp_out, mtp_logits.data(), {rows, V});
  }
  std::fprintf(stderr, "dsv3 logits: %lld tokens (%s) in %.3f s, %.1f tok/s, %zu threads -> %s [%lld, %lld]\n",
               static_cast<long long>(T), o.incremental ? "incremental" : "prefill", main_seconds,
               double(T) / main_seconds, pool.size(), o.out.c_str(), static_cast<long long>(T),
               static_cast<long long>(V));
  print_top_tokens("last position", &logits[(T - 1) * V], V);
}

}  // namespace

void add_logits_command(CLI::App& app) {
  auto opts = std::make_shared<LogitsOptions>();
  CLI::App* cmd = app.add_subcommand("logits", "Write the logits at every position as a float32 .npy [T, vocab]");
  cmd->add_option("-m,--model", opts->model, "Model directory (Hugging Face layout)")->required();
  cmd->add_option("--ids", opts->ids, "Token ids, space- or comma-separated, e.g. \"1 2 3\"")->required();
  cmd->add_option("-o,--out", opts->out, "Output .npy for the main model's logits [T, vocab]")->required();
  cmd->add_option("--mtp", opts->mtp_out, "Also write the MTP module's logits [T-1, vocab] to this .npy");
  cmd->add_flag("--incremental", opts->incremental, "Feed tokens one at a time through the latent KV cache");
  add_ep_option(cmd, opts->ep);
  cmd->add_option("-t,--threads", opts->threads, "Worker threads (default: all hardware threads)")
      ->check(CLI::Range(0, 1024));
  cmd->callback([opts] { run(*opts); });
}

}  // namespace dsv3::cli
