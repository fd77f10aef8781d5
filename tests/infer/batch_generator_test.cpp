#include "infer/batch_generator.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <random>

#include "base/error.h"
#include "formats/hf_writer.h"
#include "formats/model_dir.h"
#include "infer/generate.h"
#include "model/presets.h"

namespace dsv3 {
namespace {

std::string small_random_model() {
  const std::string dir = (std::filesystem::path(testing::TempDir()) / "batch_generator_tiny").string();
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  write_checkpoint(dir, preset_config("tiny"), DType::BF16, [&](const WeightSlot& slot, float* v) {
    for (int64_t i = 0; i < slot.rows * std::max<int64_t>(slot.cols, 1); ++i)
      v[i] = slot.role == WeightRole::Norm ? 1.0f + 0.1f * normal(rng) : 0.2f * normal(rng);
  });
  return dir;
}

struct Request {
  std::vector<int32_t> prompt;
  int64_t max_new, drafts;
  SamplingParams sampling;
  std::vector<int32_t> stop_ids;
  int64_t start_step;  // the step before which it joins
};

GenerationOptions options_of(const Request& r) {
  GenerationOptions o;
  o.max_new = r.max_new;
  o.drafts = r.drafts;
  o.stop_ids = r.stop_ids;
  return o;
}

// Sequences that join at different steps, speculate or not, sample or decode greedily,
// share every pass, and each gets exactly the tokens it gets alone.
TEST(BatchGeneratorTest, EverySequenceGetsTheTokensItGetsAlone) {
  ThreadPool pool(2);
  LoadedModel loaded = load_model(small_random_model(), pool);
  Model& model = *loaded.model;
  const int64_t V = model.config().vocab_size;
  const SamplingParams greedy{0.0f, 0, 1.0f, 0.0f, 1.0f, 0};
  const SamplingParams warm{0.9f, 40, 0.95f, 0.0f, 1.1f, 7};
  const std::vector<Request> requests = {
      {{0, 17, 300, 5}, 30, 1, greedy, {}, 0},
      {{0, 9}, 25, 0, warm, {}, 0},
      {{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 20, 2, warm, {}, 2},
      {{0, 400}, 40, 2, greedy, {}, 3},
      {{0, 33, 44}, 18, 1, warm, {}, 9},
      {{0, 5, 5, 5}, 30, 0, greedy, {}, 12},
  };
  std::vector<std::vector<int32_t>> alone(requests.size());
  std::vector<GenerationStats> alone_stats(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    Generator generator(model, 64, 2);
    Sampler sampler(requests[i].sampling, V);
    alone_stats[i] = generator.generate(requests[i].prompt, options_of(requests[i]), sampler, [&](int32_t t) {
      alone[i].push_back(t);
      return true;
    });
  }

  BatchGenerator batch(model, 4, 64, 2);
  std::vector<std::vector<int32_t>> together(requests.size());
  std::vector<std::unique_ptr<Sampler>> samplers(requests.size());
  std::vector<int64_t> slot_of(requests.size(), -1);
  std::vector<bool> done(requests.size(), false);
  size_t finished = 0;
  int64_t max_in_flight = 0;
  for (int64_t step = 0; finished < requests.size(); ++step) {
    ASSERT_LT(step, 1000);
    for (size_t i = 0; i < requests.size(); ++i) {
      if (slot_of[i] >= 0 || requests[i].start_step > step || batch.free_slot() < 0) continue;
      samplers[i] = std::make_unique<Sampler>(requests[i].sampling, V);
      slot_of[i] = batch.start(requests[i].prompt, options_of(requests[i]), *samplers[i], [&, i](int32_t t) {
        together[i].push_back(t);
        return true;
      });
    }
    int64_t in_flight = 0;
    for (int64_t s = 0; s < batch.slots(); ++s) in_flight += batch.active(s);
    max_in_flight = std::max(max_in_flight, in_flight);
    batch.step();
    for (size_t i = 0; i < requests.size(); ++i)
      if (slot_of[i] >= 0 && !done[i] && !batch.active(slot_of[i])) {
        done[i] = true;
        ++finished;
        const GenerationStats& stats = batch.stats(slot_of[i]);
        EXPECT_EQ(stats.finish, FinishReason::kLength) << i;
        EXPECT_EQ(stats.generated_tokens, alone_stats[i].generated_tokens) << i;
        EXPECT_EQ(stats.accepted, alone_stats[i].accepted) << i;
        EXPECT_EQ(stats.decode_passes, alone_stats[i].decode_passes) << i;
      }
  }
  EXPECT_EQ(max_in_flight, 4);  // the batch was full at times
  for (size_t i = 0; i < requests.size(); ++i) EXPECT_EQ(together[i], alone[i]) << "request " << i;
}

TEST(BatchGeneratorTest, FullBatchesRefuseAndCancelledSlotsFreeAtOnce) {
  ThreadPool pool(1);
  LoadedModel loaded = load_model(small_random_model(), pool);
  Model& model = *loaded.model;
  const SamplingParams greedy{0.0f, 0, 1.0f, 0.0f, 1.0f, 0};
  Sampler a(greedy, model.config().vocab_size), b(greedy, model.config().vocab_size);
  BatchGenerator batch(model, 2, 32, 1);
  GenerationOptions options;
  options.max_new = 20;
  options.drafts = 1;
  std::vector<int32_t> got;
  const int64_t first = batch.start(std::vector<int32_t>{0, 3}, options, a, [&](int32_t t) {
    got.push_back(t);
    return true;
  });
  batch.start(std::vector<int32_t>{0, 4}, options, b, [](int32_t) { return true; });
  EXPECT_EQ(batch.free_slot(), -1);
  EXPECT_THROW(batch.start(std::vector<int32_t>{0}, options, a, [](int32_t) { return true; }), Error);
  batch.step();
  batch.step();
  const size_t seen = got.size();
  EXPECT_GT(seen, 0u);
  batch.cancel(first);
  EXPECT_EQ(batch.free_slot(), first);
  EXPECT_EQ(batch.stats(first).finish, FinishReason::kCancelled);
  batch.step();
  EXPECT_EQ(got.size(), seen);  // nothing more reaches a cancelled sequence's sink

  // Bad requests are refused before any work and leave the free slot free.
  options.max_new = 40;
  EXPECT_THROW(batch.start(std::vector<int32_t>{0}, options, a, [](int32_t) { return true; }), Error);  // > context
  options.max_new = 4;
  EXPECT_THROW(batch.start(std::vector<int32_t>{}, options, a, [](int32_t) { return true; }), Error);
  EXPECT_THROW(batch.start(std::vector<int32_t>{0, 100000}, options, a, [](int32_t) { return true; }), Error);
  options.drafts = 2;
  EXPECT_THROW(batch.start(std::vector<int32_t>{0}, options, a, [](int32_t) { return true; }), Error);
  EXPECT_EQ(batch.free_slot(), first);
}

// A sink that asks to stop ends the sequence after that token, even inside a run of
// accepted drafts, and the caches keep only the tokens reported.
TEST(BatchGeneratorTest, SinkStopEndsTheSequenceAndTrimsTheCaches) {
  ThreadPool pool(1);
  LoadedModel loaded = load_model(small_random_model(), pool);
  Model& model = *loaded.model;
  const SamplingParams greedy{0.0f, 0, 1.0f, 0.0f, 1.0f, 0};
  for (int64_t stop_after : {1, 2, 5, 9}) {
    Sampler sampler(greedy, model.config().vocab_size);
    BatchGenerator batch(model, 1, 64, 2);
    GenerationOptions options;
    options.max_new = 30;
    options.drafts = 2;
    int64_t seen = 0;
    const int64_t slot = batch.start(std::vector<int32_t>{0, 17, 300}, options, sampler,
                                     [&](int32_t) { return ++seen < stop_after; });
    while (batch.active(slot)) batch.step();
    EXPECT_EQ(seen, stop_after);
    EXPECT_EQ(batch.stats(slot).finish, FinishReason::kSink);
    EXPECT_EQ(batch.cache(slot).length(), 3 + stop_after - 1);
    EXPECT_LE(batch.mtp_cache(slot).length(), 3 + stop_after - 2);
  }
}

}  // namespace
}  // namespace dsv3
