// dsv3 bench: prefill and decode speed of a model on this machine, as medians over
// repeats, with and without MTP speculative decoding; a table, or one JSON object.
#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "base/clock.h"
#include "base/error.h"
#include "base/thread_pool.h"
#include "cli/commands.h"
#include "cli/decoding_options.h"
#include "formats/model_dir.h"
#include "infer/generate.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/machine_limits.h"
#include "model/token_cost.h"
#include "tokenizer/tokenizer.h"

namespace dsv3::cli {

namespace {

struct BenchOptions {
  std::string model, prompt;
  int64_t prompt_tokens = 128, generate_tokens = 64, repeats = 3;
  DecodingOptions decoding;
  bool json = false, roofline = false;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Natural text makes the MTP acceptance meaningful: the model's tokenizer on --prompt (or
// an English paragraph) repeated to the length asked; without a tokenizer, fixed ids.
std::vector<int32_t> bench_prompt(const BenchOptions& o, int64_t vocab_size) {
  std::vector<int32_t> ids;
  if (std::filesystem::exists(std::filesystem::path(tokenizer_dir(o.model)) / "tokenizer.json")) {
    Tokenizer tokenizer = Tokenizer::load(tokenizer_dir(o.model));
    const std::string text =
        o.prompt.empty() ? "In the beginning God created the heaven and the earth. And the earth was without form, "
                           "and void; and darkness was upon the face of the deep. And the Spirit of God moved upon "
                           "the face of the waters. And God said, Let there be light: and there was light. "
                         : o.prompt;
    ids = tokenizer.encode(text, tokenizer.add_bos_token());
    const std::vector<int32_t> body = tokenizer.encode(text, false);
    if (body.empty()) fail("the --prompt has no tokens");
    while (static_cast<int64_t>(ids.size()) < o.prompt_tokens) ids.insert(ids.end(), body.begin(), body.end());
    ids.resize(static_cast<size_t>(o.prompt_tokens));
  } else {
    for (int64_t i = 0; i < o.prompt_tokens; ++i) ids.push_back(static_cast<int32_t>((i * 7919 + 13) % vocab_size));
  }
  return ids;
}

struct DecodeResult {
  double tokens_per_second = 0, acceptance = 0;
};

DecodeResult measure_decode(Generator& generator, const std::vector<int32_t>& prompt, const BenchOptions& o,
                            int64_t drafts, int64_t vocab_size) {
  GenerationOptions options;
  options.max_new = o.generate_tokens;
  options.drafts = drafts;  // no stop tokens: always the full length
  std::vector<double> speeds;
  int64_t drafted = 0, accepted = 0;
  for (int64_t r = 0; r < o.repeats; ++r) {
    Sampler sampler(o.decoding.sampling, vocab_size);
    const GenerationStats s = generator.generate(prompt, options, sampler, [](int32_t) { return true; });
    speeds.push_back(s.decode_tokens_per_second());
    drafted += s.drafted, accepted += s.accepted;
  }
  return {median(speeds), drafted ? double(accepted) / double(drafted) : 0.0};
}

// Median time of one main-model pass over `tokens` new tokens after the prompt.
double step_seconds(Model& model, KvCache& cache, const std::vector<int32_t>& prompt, int64_t tokens,
                    std::vector<float>& logits) {
  std::vector<double> times;
  const int64_t n = static_cast<int64_t>(prompt.size()) - tokens;
  for (int i = 0; i < 15; ++i) {
    cache.truncate(n);
    const auto start = Clock::now();
    model.forward(prompt.data() + n, tokens, cache, nullptr, logits.data());
    times.push_back(seconds_since(start));
  }
  return median(times);
}

void run(const BenchOptions& o) {
  if (o.prompt_tokens < 2 || o.generate_tokens < 2 || o.repeats < 1)
    fail("bench needs -p >= 2, -n >= 2 and --repeats >= 1");
  ThreadPool pool(o.decoding.threads);
  LoadedModel loaded = load_model(o.model, pool);
  Model& model = *loaded.model;
  configure_model(model, o.decoding);
  const ModelConfig& c = model.config();
  const std::vector<int32_t> prompt = bench_prompt(o, c.vocab_size);
  const int64_t drafts = drafts_per_step(o.decoding, model);
  const int64_t context = std::min(o.prompt_tokens + o.generate_tokens, c.max_position_embeddings);
  Generator generator(model, context, drafts);
  generator.check_fits(o.prompt_tokens, o.generate_tokens);
  if (!o.json)
    std::fprintf(stderr, "bench: %s, %zu threads, %s kernels, %lld prompt + %lld generated tokens, %lld repeats\n",
                 o.model.c_str(), pool.size(), cpu_kernels().name, (long long)o.prompt_tokens,
                 (long long)o.generate_tokens, (long long)o.repeats);

  // Prefill: the whole prompt in one pass (warmed up once: page faults of the mapping).
  KvCache cache = model.make_cache(context);
  std::vector<float> logits(static_cast<size_t>((drafts + 1) * c.vocab_size));
  std::vector<double> prefill;
  for (int64_t r = 0; r <= o.repeats; ++r) {
    cache.truncate(0);
    const auto start = Clock::now();
    model.forward(prompt.data(), o.prompt_tokens, cache, nullptr, logits.data(), 1);
    if (r > 0) prefill.push_back(double(o.prompt_tokens) / seconds_since(start));
  }
  // One-token step vs the verification pass over 1 + drafts tokens.
  const double step_one = step_seconds(model, cache, prompt, 1, logits);
  const double step_verify = drafts > 0 ? step_seconds(model, cache, prompt, drafts + 1, logits) : 0.0;

  const DecodeResult plain = measure_decode(generator, prompt, o, 0, c.vocab_size);
  const DecodeResult speculative = drafts > 0 ? measure_decode(generator, prompt, o, drafts, c.vocab_size) : plain;

  const std::string dtype(dtype_name(model.weights().layers[0].attn.kv_a.dtype));
  const int64_t kv_bytes = (c.kv_lora_rank + c.qk_rope_head_dim) * c.num_hidden_layers * int64_t(sizeof(float));
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  const double rss_mib = double(usage.ru_maxrss) / 1024.0;

  nlohmann::ordered_json j;
  j["model"] = o.model;
  j["threads"] = pool.size();
  j["weights_dtype"] = dtype;
  j["cpu_kernels"] = cpu_kernels().name;  // cpu_kernels.h's variant (DSV3_CPU forces one)
  j["amx"] = cpu_kernels().amx_usable();
  j["prompt_tokens"] = o.prompt_tokens;
  j["generated_tokens"] = o.generate_tokens;
  j["repeats"] = o.repeats;
  j["prefill_tok_s"] = median(prefill);
  j["speculative"] = drafts > 0 ? "mtp" : "none";
  j["decode_tok_s"] = speculative.tokens_per_second;
  if (drafts > 0) {
    j["drafts"] = drafts;
    j["mtp_acceptance"] = speculative.acceptance;
    j["decode_tok_s_no_speculation"] = plain.tokens_per_second;
    j["mtp_speedup"] = speculative.tokens_per_second / plain.tokens_per_second;
    j["verify_step_ms"] = step_verify * 1e3;
  }
  j["one_token_step_ms"] = step_one * 1e3;
  if (drafts > 0) j["verify_over_one_token_step"] = step_verify / step_one;
  j["kv_cache_bytes_per_token"] = kv_bytes;
  j["peak_rss_mib"] = rss_mib;
  if (o.roofline) {
    // The floors: decoding reads every active weight byte once per token; prefill does
    // 2 FLOPs per weight and token.
    const MachineLimits limits = measure_machine_limits(pool);
    const TokenCost cost = token_cost(c, model.weights());
    const double decode_floor = limits.read_bytes_per_second / cost.weight_bytes;
    const double prefill_floor = limits.fma_flops_per_second / cost.flops;
    j["read_bandwidth_gb_s"] = limits.read_bytes_per_second / 1e9;
    j["fma_peak_gflop_s"] = limits.fma_flops_per_second / 1e9;
    j["active_weight_mb_per_token"] = cost.weight_bytes / 1e6;
    j["gflop_per_token"] = cost.flops / 1e9;
    j["decode_floor_tok_s"] = decode_floor;
    j["decode_fraction_of_floor"] = plain.tokens_per_second / decode_floor;
    j["prefill_floor_tok_s"] = prefill_floor;
    j["prefill_fraction_of_floor"] = median(prefill) / prefill_floor;
  }
  if (o.json) {
    std::printf("%s\n", j.dump().c_str());
    return;
  }
  std::printf("%-34s %s\n", "weights", dtype.c_str());
  std::printf("%-34s %s%s\n", "CPU kernels", cpu_kernels().name, cpu_kernels().amx_usable() ? " with AMX" : "");
  std::printf("%-34s %.1f tok/s\n", "prefill", median(prefill));
  std::printf("%-34s %.1f tok/s\n", "decode, no speculation", plain.tokens_per_second);
  if (drafts > 0) {
    std::printf("%-34s %.1f tok/s (%.2fx)\n", ("decode, MTP " + std::to_string(drafts) + " draft(s)").c_str(),
                speculative.tokens_per_second, speculative.tokens_per_second / plain.tokens_per_second);
    std::printf("%-34s %.1f %%\n", "MTP acceptance", 100 * speculative.acceptance);
    std::printf("%-34s %.2f ms / %.2f ms = %.2f\n", "step: verify pass / one token", step_verify * 1e3,
                step_one * 1e3, step_verify / step_one);
  } else {
    std::printf("%-34s %.2f ms\n", "step: one token", step_one * 1e3);
  }
  std::printf("%-34s %lld bytes ((%lld + %lld) x %lld layers x 4)\n", "KV cache per token", (long long)kv_bytes,
              (long long)c.kv_lora_rank, (long long)c.qk_rope_head_dim, (long long)c.num_hidden_layers);
  std::printf("%-34s %.0f MiB\n", "peak RSS", rss_mib);
  if (o.roofline) {
    std::printf("%-34s %.1f GB/s read, %.1f GFLOP/s FP32 FMA (%zu threads)\n", "machine", double(j["read_bandwidth_gb_s"]),
                double(j["fma_peak_gflop_s"]), pool.size());
    std::printf("%-34s %.1f MB of weights, %.3f GFLOP\n", "per token", double(j["active_weight_mb_per_token"]),
                double(j["gflop_per_token"]));
    std::printf("%-34s %.1f tok/s; measured %.0f %% of it\n", "decode floor (read bandwidth)",
                double(j["decode_floor_tok_s"]), 100 * double(j["decode_fraction_of_floor"]));
    std::printf("%-34s %.1f tok/s; measured %.0f %% of it\n", "prefill floor (FMA peak)",
                double(j["prefill_floor_tok_s"]), 100 * double(j["prefill_fraction_of_floor"]));
  }
}

}  // namespace

void add_bench_command(CLI::App& app) {
  auto o = std::make_shared<BenchOptions>();
  CLI::App* cmd = app.add_subcommand("bench", "Measure prefill and decode tokens/s (medians), with and without MTP");
  cmd->add_option("-m,--model", o->model, "Model directory")->required();
  cmd->add_option("-p,--prompt-tokens", o->prompt_tokens, "Prompt tokens for the prefill")->capture_default_str();
  cmd->add_option("-n,--n-predict", o->generate_tokens, "Tokens to decode")->capture_default_str();
  cmd->add_option("--repeats", o->repeats, "Repeats of each measurement (the median is reported)")
      ->capture_default_str();
  cmd->add_option("--prompt", o->prompt, "Text the prompt is made of (default: an English paragraph)");
  o->decoding.sampling.temperature = 0;
  add_decoding_options(*cmd, o->decoding);
  cmd->add_flag("--json", o->json, "Print one JSON object instead of the table");
  cmd->add_flag("--roofline", o->roofline,
                "Also measure this machine's read bandwidth and FMA peak and report decode and prefill as "
                "fractions of the floors they set");
  cmd->callback([o] { run(*o); });
}

}  // namespace dsv3::cli
