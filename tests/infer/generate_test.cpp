#include "infer/generate.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <random>

#include "base/error.h"
#include "formats/hf_writer.h"
#include "formats/model_dir.h"
#include "model/presets.h"

namespace dsv3 {
namespace {

std::string tiny_model() {
  const std::string dir = (std::filesystem::path(testing::TempDir()) / "generate_model").string();
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  write_checkpoint(dir, preset_config("tiny"), DType::BF16, [&](const WeightSlot& slot, float* v) {
    for (int64_t i = 0; i < slot.rows * std::max<int64_t>(slot.cols, 1); ++i)
      v[i] = slot.role == WeightRole::Norm ? 1.0f : 0.2f * normal(rng);
  });
  return dir;
}

// Greedy generation through the cache equals re-running the whole sequence each step.
TEST(GenerateTest, GreedyMatchesFullRecomputation) {
  ThreadPool pool(2);
  LoadedModel loaded = load_model(tiny_model(), pool);
  Model& model = *loaded.model;
  const std::vector<int32_t> prompt = {0, 17, 300, 5};
  Sampler greedy({0.0f, 0, 1.0f, 0.0f, 1.0f, 0}, model.config().vocab_size);
  std::vector<int32_t> generated;
  generate(model, prompt, 12, greedy, {}, [&](int32_t t) { generated.push_back(t); });
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

TEST(GenerateTest, StopsAtAStopTokenAndRefusesContextOverflow) {
  ThreadPool pool(1);
  LoadedModel loaded = load_model(tiny_model(), pool);
  Sampler greedy({0.0f, 0, 1.0f, 0.0f, 1.0f, 0}, loaded.model->config().vocab_size);
  int32_t first = -1;
  generate(*loaded.model, {1, 2}, 1, greedy, {}, [&](int32_t t) { first = t; });
  int count = 0;
  generate(*loaded.model, {1, 2}, 10, greedy, {first}, [&](int32_t) { ++count; });
  EXPECT_EQ(count, 1);
  EXPECT_THROW(generate(*loaded.model, {1, 2}, 5000, greedy, {}, [](int32_t) {}), Error);
}

}  // namespace
}  // namespace dsv3
