#include "kernels/cpu/latent_attention.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "random_input.h"

namespace dsv3 {
namespace {

constexpr int64_t kHeads = 7, kRank = 40, kRope = 8, kRow = kRank + kRope;

// Queries laid out as the model lays them out: latent [head][T][rank], rope [T][head][kRope].
struct Queries {
  std::vector<float> latent, rope;
  LatentQueries view(int64_t first_head, int64_t T) const {
    return {latent.data() + first_head * T * kRank, kRank, T * kRank, rope.data() + first_head * kRope,
            kHeads * kRope, kRope};
  }
};

// Calls latent_attention on the heads in groups of `group` (the last group smaller), as the
// model's pool threads do; out: [head][T][rank].
std::vector<float> attend(const Queries& q, int64_t T, int64_t first_pos, const std::vector<float>& cache,
                          float scale, int64_t group) {
  std::vector<float> out(static_cast<size_t>(kHeads * T * kRank), NAN);
  std::vector<float> scratch(
      static_cast<size_t>(latent_attention_scratch_floats(kRank, kRope, group, T, first_pos + T)), NAN);
  for (int64_t h0 = 0; h0 < kHeads; h0 += group) {
    const int64_t heads = std::min(group, kHeads - h0);
    latent_attention(q.view(h0, T), heads, T, first_pos, cache.data(), kRank, kRope, scale, scratch.data(),
                     out.data() + h0 * T * kRank, T * kRank);
  }
  return out;
}

// The definition in double precision (softmax over the rows each query sees, then the
// probability-weighted latent rows), against which every grouping must match, and every
// grouping gives the same bits: the model's results must not depend on its thread count.
TEST(LatentAttentionTest, EveryGroupingOfHeadsMatchesDoublePrecisionWithTheSameBits) {
  const float scale = 0.2f;
  for (auto [T, first_pos] : {std::pair<int64_t, int64_t>{1, 37}, {5, 0}, {19, 11}}) {
    const int64_t visible = first_pos + T;
    const std::vector<float> cache = random_input(visible * kRow, 1);
    const Queries q{random_input(kHeads * T * kRank, 2), random_input(T * kHeads * kRope, 3)};
    const std::vector<float> one_by_one = attend(q, T, first_pos, cache, scale, 1);
    for (int64_t group : {int64_t{2}, int64_t{3}, int64_t{5}, kHeads}) {
      const std::vector<float> grouped = attend(q, T, first_pos, cache, scale, group);
      EXPECT_EQ(std::memcmp(grouped.data(), one_by_one.data(), grouped.size() * sizeof(float)), 0)
          << "groups of " << group << " heads, T " << T << ", first position " << first_pos;
    }
    for (int64_t h = 0; h < kHeads; ++h)
      for (int64_t t = 0; t < T; ++t) {
        const int64_t seen = first_pos + t + 1;
        std::vector<double> p(static_cast<size_t>(seen));
        double max_score = -INFINITY, sum = 0;
        for (int64_t s = 0; s < seen; ++s) {
          double dot = 0;
          for (int64_t c = 0; c < kRank; ++c) dot += double(q.latent[(h * T + t) * kRank + c]) * cache[s * kRow + c];
          for (int64_t c = 0; c < kRope; ++c)
            dot += double(q.rope[(t * kHeads + h) * kRope + c]) * cache[s * kRow + kRank + c];
          p[s] = dot * scale;
          max_score = std::max(max_score, p[s]);
        }
        for (double& v : p) sum += v = std::exp(v - max_score);
        for (int64_t c = 0; c < kRank; ++c) {
          double exact = 0;
          for (int64_t s = 0; s < seen; ++s) exact += p[s] / sum * cache[s * kRow + c];
          EXPECT_NEAR(one_by_one[(h * T + t) * kRank + c], exact, 2e-5)
              << "head " << h << ", token " << t << ", column " << c << ", T " << T;
        }
      }
  }
}

}  // namespace
}  // namespace dsv3
