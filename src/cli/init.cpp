// dsv3 init: writes a randomly initialised DeepSeek-V3-architecture checkpoint
// (for tests, benchmarks and the quickstart before training exists).
#include <cstdio>
#include <random>

#include "base/error.h"
#include "cli/commands.h"
#include "formats/hf_writer.h"
#include "formats/model_config.h"
#include "model/presets.h"

namespace dsv3::cli {

namespace {

struct InitOptions {
  std::string out;
  std::string preset = "tiny";
  std::string config;
  std::string dtype = "bf16";
  int64_t vocab_size = 0;  // 0: the preset's or the config's
  uint64_t seed = 0;
  double std_dev = 0.006;
};

DType parse_dtype(const std::string& name) {
  if (name == "bf16") return DType::BF16;
  if (name == "fp8") return DType::F8_E4M3;
  if (name == "f32") return DType::F32;
  if (name == "f16") return DType::F16;
  fail("unknown dtype '", name, "' (--dtype: bf16, fp8, f32, f16)");
}

void run(const InitOptions& o) {
  ModelConfig config = o.config.empty() ? preset_config(o.preset) : read_model_config(o.config);
  if (o.vocab_size > 0) {
    config.vocab_size = o.vocab_size;
    config.validate();
  }
  const DType dtype = parse_dtype(o.dtype);
  std::mt19937_64 rng(o.seed);
  std::normal_distribution<float> normal(0.0f, static_cast<float>(o.std_dev));
  int64_t parameters = 0;
  write_checkpoint(o.out, config, dtype, [&](const WeightSlot& slot, float* values) {
    const int64_t n = slot.rows * std::max<int64_t>(slot.cols, 1);
    parameters += n;
    for (int64_t i = 0; i < n; ++i) {
      switch (slot.role) {
        case WeightRole::Norm: values[i] = 1.0f; break;
        case WeightRole::Bias: values[i] = 0.0f; break;
        default: values[i] = normal(rng);
      }
    }
  });
  std::fprintf(stderr, "dsv3 init: wrote %s (%.1fM parameters, %s weights)\n", o.out.c_str(), double(parameters) / 1e6,
               o.dtype.c_str());
}

}  // namespace

void add_init_command(CLI::App& app) {
  auto opts = std::make_shared<InitOptions>();
  CLI::App* cmd = app.add_subcommand("init", "Write a randomly initialised model directory (Hugging Face layout)");
  cmd->add_option("-o,--out", opts->out, "Output model directory")->required();
  cmd->add_option("--preset", opts->preset, "Model size: tiny, small, 0.5b")->capture_default_str();
  cmd->add_option("--config", opts->config, "A config.json to use instead of a preset");
  cmd->add_option("--dtype", opts->dtype, "Weight storage: bf16, fp8 (official block-scaled format), f32, f16")
      ->capture_default_str();
  cmd->add_option("--vocab-size", opts->vocab_size,
                  "Vocabulary size instead of the preset's or config's (e.g. a tokenizer's, which a benchmark's "
                  "model should match)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 31));
  cmd->add_option("--seed", opts->seed, "Random seed")->capture_default_str();
  cmd->add_option("--std", opts->std_dev, "Standard deviation of the normal initialisation")->capture_default_str();
  cmd->callback([opts] { run(*opts); });
}

}  // namespace dsv3::cli
