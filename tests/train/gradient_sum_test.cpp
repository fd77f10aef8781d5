#include "train/gradient_sum.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

#include "base/error.h"
#include "model/presets.h"

namespace dsv3 {
namespace {

ModelConfig three_layer_config() {
  ModelConfig c = preset_config("tiny");
  c.num_hidden_layers = 3;
  c.validate();
  return c;
}

// Each decoder layer's range holds exactly its own tensors, the ranges are disjoint and in
// layer order, and the embedding (the MTP module's shared one included) lies outside them.
TEST(GradientSumTest, LayerRangesAreEachLayersOwnTensors) {
  const ModelConfig c = three_layer_config();
  const ParameterLayout<float> layout(c);
  size_t previous_end = 0;
  for (int64_t layer = 0; layer < c.num_hidden_layers; ++layer) {
    const auto [begin, end] = layout.layer_range(layer);
    EXPECT_LE(previous_end, begin);
    EXPECT_LT(begin, end);
    previous_end = end;
    const std::string prefix = "model.layers." + std::to_string(layer) + ".";
    for (size_t i = 0; i < layout.slots.size(); ++i) {
      const bool inside = layout.offsets[i] >= begin && layout.offsets[i] < end;
      EXPECT_EQ(inside, layout.slots[i].name.starts_with(prefix) && !layout.slots[i].mtp_copy_of_main)
          << layout.slots[i].name;
    }
  }
  EXPECT_THROW(layout.layer_range(99), Error);
}

// Summing some ranges early (as the trainer does in a rank's last backward) and the rest at the
// end gives exactly the sum of plain flushes, the MTP module's embedding share included.
TEST(GradientSumTest, EarlyRangesAndTheRestGiveThePlainSum) {
  const ModelConfig c = three_layer_config();
  const ParameterLayout<float> layout(c);
  ThreadPool pool(2);
  Communicator& one_rank = Communicator::world();
  ASSERT_FALSE(one_rank.distributed());
  GradientSum plain(layout, pool), early(layout, pool);
  std::mt19937 rng(5);
  std::normal_distribution<float> normal;
  auto same_values = [&](DenseMatrix<float>& a, DenseMatrix<float>& b) {
    for (int64_t i = 0; i < a.rows * a.cols; ++i) a.data[i] = b.data[i] = normal(rng);
  };
  auto fill = [&](TrainWeights<float>& a, TrainWeights<float>& b) {
    same_values(a.embed, b.embed);
    same_values(a.layers[1].attn.o, b.layers[1].attn.o);
    same_values(a.head, b.head);
    ASSERT_TRUE(a.mtp && b.mtp);
    same_values(a.mtp->embed, b.mtp->embed);  // kept apart until the flush
  };
  fill(plain.sequence(), early.sequence());  // a first sequence, flushed
  plain.flush();
  early.flush();
  fill(plain.sequence(), early.sequence());  // the last one: layers 2 and 1 summed early
  plain.flush();
  plain.reduce(one_rank);
  for (int64_t layer : {2, 1}) {
    const auto [begin, end] = layout.layer_range(layer);
    early.reduce_early(begin, end, one_rank);
  }
  early.reduce(one_rank);
  std::vector<float> a(layout.size), b(layout.size);
  plain.take(a);
  early.take(b);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, std::vector<float>(layout.size, 0.0f));
}

}  // namespace
}  // namespace dsv3
