#include "infer/generate.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <new>
#include <cmath>
#include <filesystem>
#include <random>

#include "base/error.h"
#include "formats/gguf_model.h"
#include "formats/hf_writer.h"
#include "formats/model_dir.h"
#include "infer/speculative.h"
#include "model/presets.h"

// Counts heap allocations while `counting` is set (this test binary's operator new, over
// malloc; GCC's check pairs the inlined free with the new-expression, hence the pragma).
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
namespace {
std::atomic<bool> counting{false};
std::atomic<int64_t> allocations{0};
}  // namespace

// Every replaceable scalar form, so that whatever new allocated, the matching delete frees
// (AddressSanitizer checks the pairing).
void* operator new(size_t size) {
  if (counting) ++allocations;
  if (void* p = std::malloc(size ? size : 1)) return p;
  throw std::bad_alloc();
}
void* operator new(size_t size, const std::nothrow_t&) noexcept {
  if (counting) ++allocations;
  return std::malloc(size ? size : 1);
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }

namespace dsv3 {
namespace {

std::string random_model(const std::string& name, ModelConfig config, DType dtype, float scale, unsigned seed) {
  const std::string dir = (std::filesystem::path(testing::TempDir()) / name).string();
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  write_checkpoint(dir, config, dtype, [&](const WeightSlot& slot, float* v) {
    for (int64_t i = 0; i < slot.rows * std::max<int64_t>(slot.cols, 1); ++i)
      v[i] = slot.role == WeightRole::Norm ? 1.0f + 0.1f * normal(rng) : scale * normal(rng);
  });
  return dir;
}

std::string tiny_model() { return random_model("generate_tiny", preset_config("tiny"), DType::BF16, 0.2f, 5); }

const SamplingParams kGreedy{0.0f, 0, 1.0f, 0.0f, 1.0f, 0};

std::vector<int32_t> run(Generator& generator, const std::vector<int32_t>& prompt, int64_t max_new, int64_t drafts,
                         Sampler& sampler, GenerationStats* stats = nullptr, std::vector<int32_t> stop_ids = {}) {
  std::vector<int32_t> out;
  GenerationOptions options;
  options.max_new = max_new;
  options.drafts = drafts;
  options.stop_ids = std::move(stop_ids);
  const GenerationStats s = generator.generate(prompt, options, sampler, [&](int32_t t) {
    out.push_back(t);
    return true;
  });
  if (stats) *stats = s;
  return out;
}

// Greedy generation through the cache equals re-running the whole sequence each step.
TEST(GenerateTest, GreedyMatchesFullRecomputation) {
  ThreadPool pool(2);
  LoadedModel loaded = load_model(tiny_model(), pool);
  Model& model = *loaded.model;
  const std::vector<int32_t> prompt = {0, 17, 300, 5};
  Generator generator(model, 64);
  Sampler greedy(kGreedy, model.config().vocab_size);
  const std::vector<int32_t> generated = run(generator, prompt, 12, 0, greedy);
  ASSERT_EQ(generated.size(), 12u);

  std::vector<int32_t> sequence = prompt;
  const int64_t V = model.config().vocab_size;
  for (int32_t expected : generated) {
    KvCache cache = model.make_cache(static_cast<int64_t>(sequence.size()));
    std::vector<float> logits(sequence.size() * V);
    model.forward(sequence.data(), static_cast<int64_t>(sequence.size()), cache, nullptr, logits.data());
    const float* last = &logits[(sequence.size() - 1) * V];
    EXPECT_EQ(std::max_element(last, last + V) - last, expected);
    sequence.push_back(expected);
  }
}

TEST(GenerateTest, StopsAtAStopTokenOrWhenTheSinkSaysSoAndRefusesContextOverflow) {
  ThreadPool pool(1);
  LoadedModel loaded = load_model(tiny_model(), pool);
  Generator generator(*loaded.model, 64, 2);
  Sampler greedy(kGreedy, loaded.model->config().vocab_size);
  const std::vector<int32_t> plain = run(generator, {1, 2}, 10, 0, greedy);
  for (int64_t drafts : {0, 1, 2}) {
    EXPECT_EQ(run(generator, {1, 2}, 10, drafts, greedy, nullptr, {plain[3]}),
              std::vector<int32_t>(plain.begin(), plain.begin() + 4));
    int count = 0;
    GenerationOptions options;
    options.max_new = 10;
    options.drafts = drafts;
    generator.generate({1, 2}, options, greedy, [&](int32_t) { return ++count < 3; });
    EXPECT_EQ(count, 3);
  }
  try {
    run(generator, {1, 2}, 63, 0, greedy);
    FAIL() << "no context overflow error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("2 tokens + 63 new tokens exceed the context of 64"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(run(generator, {}, 5, 0, greedy), Error);
  EXPECT_THROW(run(generator, {1}, 5, 3, greedy), Error);  // more drafts than the generator was made for
  EXPECT_THROW(Generator(*loaded.model, 5000), Error);     // beyond max_position_embeddings
}

TEST(GenerateTest, SpeculationNeedsAnMtpModule) {
  ModelConfig config = preset_config("tiny");
  config.num_nextn_predict_layers = 0;
  ThreadPool pool(1);
  LoadedModel loaded = load_model(random_model("generate_no_mtp", config, DType::BF16, 0.2f, 1), pool);
  EXPECT_THROW(Generator(*loaded.model, 16, 1), Error);
}

// Greedy speculative decoding gives exactly the tokens of plain decoding, for several
// models, prompts and draft counts, with and without a repetition penalty; random MTP
// modules get most drafts rejected and trained ones most accepted, so both paths run.
TEST(GenerateTest, GreedySpeculativeDecodingEqualsPlainDecoding) {
  ModelConfig small = preset_config("small");
  small.vocab_size = 512;
  const std::vector<std::string> models = {
      tiny_model(), random_model("generate_fp8", preset_config("tiny"), DType::F8_E4M3, 0.3f, 9),
      random_model("generate_small", small, DType::BF16, 0.05f, 3)};
  const std::vector<std::vector<int32_t>> prompts = {{0}, {0, 17, 300, 5}, {3, 3, 3, 3, 3, 3, 3, 9, 100, 200, 7}};
  ThreadPool pool(2);
  for (const std::string& dir : models) {
    LoadedModel loaded = load_model(dir, pool);
    Generator generator(*loaded.model, 128, 3);
    for (float penalty : {1.0f, 1.3f}) {
      SamplingParams params = kGreedy;
      params.repetition_penalty = penalty;
      Sampler greedy(params, loaded.model->config().vocab_size);
      for (const auto& prompt : prompts) {
        const std::vector<int32_t> plain = run(generator, prompt, 40, 0, greedy);
        for (int64_t drafts : {1, 2, 3}) {
          GenerationStats stats;
          EXPECT_EQ(run(generator, prompt, 40, drafts, greedy, &stats), plain)
              << dir << ", prompt of " << prompt.size() << ", " << drafts << " drafts";
          EXPECT_GT(stats.drafted, 0);
          EXPECT_LE(stats.decode_passes, 39);
        }
      }
    }
  }
}

// With activations rounded to BF16 (--activations bf16), speculative decoding still gives
// exactly the plain greedy output: the verification pass computes each token as decoding does.
TEST(GenerateTest, GreedySpeculativeDecodingEqualsPlainDecodingWithBf16Activations) {
  ThreadPool pool(2);
  LoadedModel loaded = load_model(tiny_model(), pool);
  loaded.model->set_matmul_input(MatmulInput::kBF16);
  Generator generator(*loaded.model, 128, 3);
  Sampler greedy(kGreedy, loaded.model->config().vocab_size);
  const std::vector<int32_t> prompt = {0, 17, 300, 5};
  const std::vector<int32_t> plain = run(generator, prompt, 40, 0, greedy);
  for (int64_t drafts : {1, 3}) EXPECT_EQ(run(generator, prompt, 40, drafts, greedy), plain) << drafts << " drafts";
}

// --activations q8 on a Q8_0 GGUF (its Q8_0 weights meet Q8_0-quantised activations in passes
// of up to 32 tokens, the rest BF16-rounded ones): greedy speculative decoding still gives
// plain decoding's tokens, also with 16 drafts (17-token verification passes).
TEST(GenerateTest, GreedySpeculativeDecodingEqualsPlainDecodingWithQ8Activations) {
  ThreadPool pool(2);
  const std::string path = (std::filesystem::path(testing::TempDir()) / "generate_tiny_q8_0.gguf").string();
  std::filesystem::remove(path);
  std::mt19937 rng(6);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  write_gguf_model(path, preset_config("tiny"), DType::Q8_0, "tiny", "", [&](const WeightSlot& slot, float* v) {
    for (int64_t i = 0; i < slot.rows * std::max<int64_t>(slot.cols, 1); ++i)
      v[i] = slot.role == WeightRole::Norm ? 1.0f + 0.1f * normal(rng) : 0.2f * normal(rng);
  });
  LoadedModel loaded = load_model(path, pool);
  loaded.model->set_matmul_input(MatmulInput::kQ8);
  Generator generator(*loaded.model, 128, 16);
  Sampler greedy(kGreedy, loaded.model->config().vocab_size);
  const std::vector<int32_t> prompt = {0, 17, 300, 5};
  const std::vector<int32_t> plain = run(generator, prompt, 40, 0, greedy);
  for (int64_t drafts : {1, 3, 16}) EXPECT_EQ(run(generator, prompt, 40, drafts, greedy), plain) << drafts << " drafts";
}

// The decode loop allocates nothing: a run's allocations do not grow with its length.
TEST(GenerateTest, DecodingAllocatesNothingPerToken) {
  ThreadPool pool(2);
  LoadedModel loaded = load_model(tiny_model(), pool);
  Generator generator(*loaded.model, 128, 2);
  std::vector<int32_t> out;
  out.reserve(100);
  auto allocations_for = [&](int64_t max_new, int64_t drafts, float temperature) {
    SamplingParams params = kGreedy;
    params.temperature = temperature;
    Sampler sampler(params, loaded.model->config().vocab_size);
    GenerationOptions options;
    options.max_new = max_new;
    options.drafts = drafts;
    out.clear();
    allocations = 0;
    counting = true;
    generator.generate({0, 17, 300, 5}, options, sampler, [&](int32_t t) {
      out.push_back(t);
      return true;
    });
    counting = false;
    return allocations.load();
  };
  for (MatmulInput input : {MatmulInput::kF32, MatmulInput::kBF16}) {
    loaded.model->set_matmul_input(input);
    for (int64_t drafts : {0, 1, 2})
      for (float temperature : {0.0f, 0.8f}) {
        allocations_for(50, drafts, temperature);  // warm: the thread pool's first tasks, the workspace
        EXPECT_EQ(allocations_for(60, drafts, temperature), allocations_for(6, drafts, temperature))
            << drafts << " drafts, temperature " << temperature << ", "
            << (input == MatmulInput::kBF16 ? "bf16" : "fp32") << " activations";
      }
  }
}

// After speculative decoding (drafts accepted and rejected, caches rolled back many
// times) the caches hold exactly what a run that never drafted holds.
TEST(GenerateTest, RollbackLeavesTheCachesAsIfNothingWasDrafted) {
  ThreadPool pool(2);
  LoadedModel loaded = load_model(tiny_model(), pool);
  Model& model = *loaded.model;
  const ModelConfig& c = model.config();
  const std::vector<int32_t> prompt = {0, 17, 300, 5, 9};
  Generator plain(model, 64), speculative(model, 64, 3);
  Sampler greedy(kGreedy, c.vocab_size);
  const std::vector<int32_t> tokens = run(plain, prompt, 30, 0, greedy);
  GenerationStats stats;
  ASSERT_EQ(run(speculative, prompt, 30, 3, greedy, &stats), tokens);
  EXPECT_GT(stats.drafted - stats.accepted, 0);  // some drafts were rolled back

  const int64_t consumed = static_cast<int64_t>(prompt.size() + tokens.size()) - 1;
  ASSERT_EQ(plain.cache().length(), consumed);
  ASSERT_EQ(speculative.cache().length(), consumed);
  const int64_t row = plain.cache().row_size();
  auto rows = [&](const KvCache& cache, int64_t layer, int64_t n) {
    const float* p = const_cast<KvCache&>(cache).layer(layer);
    return std::vector<float>(p, p + n * row);
  };
  for (int64_t layer = 0; layer < c.num_hidden_layers; ++layer)
    EXPECT_EQ(rows(speculative.cache(), layer, consumed), rows(plain.cache(), layer, consumed)) << "layer " << layer;

  // The MTP cache against the MTP module run once over the final sequence.
  std::vector<int32_t> sequence = prompt;
  sequence.insert(sequence.end(), tokens.begin(), tokens.end());
  const int64_t mtp_rows = speculative.mtp_cache().length();
  EXPECT_GE(mtp_rows, consumed - 4);
  KvCache cache = model.make_cache(consumed), mtp_cache = model.make_mtp_cache(consumed);
  std::vector<float> hidden(static_cast<size_t>(consumed * c.hidden_size));
  model.forward(sequence.data(), consumed, cache, hidden.data(), nullptr);
  model.forward_mtp(sequence.data() + 1, hidden.data(), mtp_rows, mtp_cache, nullptr, 0);
  EXPECT_EQ(rows(speculative.mtp_cache(), 0, mtp_rows), rows(mtp_cache, 0, mtp_rows));
}

// The acceptance rule alone: whatever the draft distribution, the tokens that come out
// follow the target distribution. Tolerance: 6 standard deviations of each frequency.
TEST(SpeculativeTest, AcceptanceRuleReproducesTheTargetDistribution) {
  const std::vector<float> target = {0.5f, 0.3f, 0.15f, 0.05f, 0.0f};
  const std::vector<std::vector<float>> drafts = {
      {0.1f, 0.1f, 0.1f, 0.1f, 0.6f}, {0.5f, 0.3f, 0.15f, 0.05f, 0.0f}, {0.0f, 0.0f, 0.0f, 1.0f, 0.0f}};
  Sampler rng({1.0f, 0, 1.0f, 0.0f, 1.0f, 11}, 5), draft_rng({1.0f, 0, 1.0f, 0.0f, 1.0f, 12}, 5);
  std::vector<float> residual;
  const int N = 200000;
  for (const auto& q : drafts) {
    std::vector<int> counts(5);
    int accepted = 0;
    for (int i = 0; i < N; ++i) {
      const DraftVerdict v = verify_draft(target, q, draft_rng.draw(q), rng, residual);
      ++counts[static_cast<size_t>(v.token)];
      accepted += v.accepted;
    }
    for (size_t k = 0; k < 5; ++k) {
      const double p = target[k], sd = std::sqrt(p * (1 - p) / N);
      EXPECT_NEAR(double(counts[k]) / N, p, 6 * sd + 1e-12) << "token " << k;
    }
    // Acceptance is sum_x min(p, q).
    double overlap = 0;
    for (size_t k = 0; k < 5; ++k) overlap += std::min(target[k], q[k]);
    overlap = std::min(overlap, 1.0);
    EXPECT_NEAR(double(accepted) / N, overlap, 6 * std::sqrt(overlap * (1 - overlap) / N) + 1e-12);
  }
}

// End to end on a 4-token vocabulary: the joint distribution of three sampled tokens
// with 2 MTP drafts per step equals the model's own (chain rule over plain forward
// passes), by a chi-square test whose bound follows from the degrees of freedom.
TEST(SpeculativeTest, SpeculativeSamplingKeepsTheModelsDistribution) {
  ModelConfig config = preset_config("tiny");
  config.vocab_size = 4;
  ThreadPool pool(1);
  LoadedModel loaded = load_model(random_model("generate_vocab4", config, DType::F32, 0.5f, 21), pool);
  Model& model = *loaded.model;
  const std::vector<int32_t> prompt = {2, 0, 3};
  for (const SamplingParams base : {SamplingParams{1.0f, 0, 1.0f, 0.0f, 1.0f, 0},
                                    SamplingParams{0.7f, 3, 0.9f, 0.0f, 1.2f, 0}}) {
    // Exact joint probabilities from plain forward passes and the sampler's distribution.
    std::vector<double> exact(64);
    Sampler reference(base, 4);
    std::vector<float> logits(4 * 6), probs;
    for (int cell = 0; cell < 64; ++cell) {
      std::vector<int32_t> seq = prompt;
      double p = 1;
      for (int j = 0; j < 3; ++j) {
        KvCache cache = model.make_cache(8);
        model.forward(seq.data(), static_cast<int64_t>(seq.size()), cache, nullptr, logits.data(), 1);
        reference.distribution(logits.data(), seq, probs);
        const int32_t token = (cell >> (2 * (2 - j))) & 3;
        p *= probs[static_cast<size_t>(token)];
        seq.push_back(token);
      }
      exact[static_cast<size_t>(cell)] = p;
    }
    Generator generator(model, 8, 2);
    const int N = 12000;
    std::vector<int> counts(64);
    int64_t drafted = 0, accepted = 0;
    for (int i = 0; i < N; ++i) {
      SamplingParams params = base;
      params.seed = static_cast<uint64_t>(i);
      Sampler sampler(params, 4);
      GenerationStats stats;
      const std::vector<int32_t> t = run(generator, prompt, 3, 2, sampler, &stats);
      ++counts[static_cast<size_t>(t[0] * 16 + t[1] * 4 + t[2])];
      drafted += stats.drafted, accepted += stats.accepted;
    }
    double chi2 = 0;
    int df = -1;
    for (size_t cell = 0; cell < 64; ++cell) {
      const double expected = exact[cell] * N;
      if (expected == 0) {
        EXPECT_EQ(counts[cell], 0) << "an impossible sequence was sampled: cell " << cell;
        continue;
      }
      chi2 += (counts[cell] - expected) * (counts[cell] - expected) / expected;
      ++df;
    }
    // Mean df, standard deviation sqrt(2 df): 6 of them is far beyond chance.
    EXPECT_LT(chi2, df + 6 * std::sqrt(2.0 * df)) << "df " << df;
    EXPECT_GT(accepted, 0);
    EXPECT_LT(accepted, drafted);  // both outcomes of the rule were exercised
  }
}

}  // namespace
}  // namespace dsv3
