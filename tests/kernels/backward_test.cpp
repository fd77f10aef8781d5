// Every backward op against central finite differences in double precision.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>
#include <vector>

#include "kernels/cpu/causal_attention.h"
#include "kernels/cpu/cross_entropy.h"
#include "kernels/cpu/embedding.h"
#include "kernels/cpu/linear.h"
#include "kernels/cpu/rmsnorm.h"
#include "kernels/cpu/rope.h"
#include "kernels/cpu/swiglu.h"
#include "model/router.h"

namespace dsv3 {
namespace {

using Vec = std::vector<double>;

Vec random_vec(size_t n, uint32_t seed, double scale = 1.0) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal(0.0, scale);
  Vec v(n);
  for (double& x : v) x = normal(rng);
  return v;
}

// d/dx of L = sum(r * f()) by central differences, perturbing x in place.
Vec numeric_gradient(Vec& x, const std::function<Vec()>& f, const Vec& r, double h = 1e-6) {
  Vec g(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double saved = x[i];
    x[i] = saved + h;
    const Vec plus = f();
    x[i] = saved - h;
    const Vec minus = f();
    x[i] = saved;
    double d = 0;
    for (size_t j = 0; j < r.size(); ++j) d += r[j] * (plus[j] - minus[j]);
    g[i] = d / (2 * h);
  }
  return g;
}

double relative_error(const Vec& a, const Vec& b) {
  double diff = 0, na = 0, nb = 0;
  for (size_t i = 0; i < a.size(); ++i) diff += (a[i] - b[i]) * (a[i] - b[i]), na += a[i] * a[i], nb += b[i] * b[i];
  return std::sqrt(diff) / std::max(std::sqrt(std::max(na, nb)), 1e-300);
}

constexpr double kTolerance = 1e-6;

TEST(BackwardTest, RmsNorm) {
  const int64_t rows = 3, n = 13;
  Vec x = random_vec(rows * n, 1), w = random_vec(n, 2), r = random_vec(rows * n, 3);
  const double eps = 1e-5;
  auto f = [&] {
    Vec y(rows * n);
    rmsnorm(x.data(), n, rows, n, w.data(), eps, y.data(), n);
    return y;
  };
  Vec dx(rows * n), dw(n, 0.0);
  rmsnorm_backward(x.data(), r.data(), rows, n, w.data(), eps, dx.data(), dw.data());
  EXPECT_LE(relative_error(dx, numeric_gradient(x, f, r)), kTolerance);
  EXPECT_LE(relative_error(dw, numeric_gradient(w, f, r)), kTolerance);
}

TEST(BackwardTest, SwiGlu) {
  const int64_t n = 17;
  Vec gate = random_vec(n, 4, 2.0), up = random_vec(n, 5), r = random_vec(n, 6);
  auto f = [&] {
    Vec h(n);
    swiglu(gate.data(), up.data(), n, h.data());
    return h;
  };
  Vec dgate(n), dup(n);
  swiglu_backward(gate.data(), up.data(), r.data(), n, dgate.data(), dup.data());
  EXPECT_LE(relative_error(dgate, numeric_gradient(gate, f, r)), kTolerance);
  EXPECT_LE(relative_error(dup, numeric_gradient(up, f, r)), kTolerance);
}

TEST(BackwardTest, Rope) {
  const int64_t n = 8;
  const float inv_freq[4] = {1.0f, 0.3f, 0.05f, 0.001f};
  Vec cos(4), sin(4);
  rope_tables(inv_freq, n, 7, 1, 1.2f, cos.data(), sin.data());
  Vec x = random_vec(n, 7), r = random_vec(n, 8);
  auto f = [&] {
    Vec y = x;
    rope_apply(y.data(), n, cos.data(), sin.data());
    return y;
  };
  Vec dx = r;
  rope_apply_backward(dx.data(), n, cos.data(), sin.data());
  EXPECT_LE(relative_error(dx, numeric_gradient(x, f, r)), kTolerance);
}

TEST(BackwardTest, CrossEntropy) {
  const int64_t rows = 4, vocab = 11;
  Vec logits = random_vec(rows * vocab, 9, 3.0);
  const std::vector<int32_t> targets = {3, -1, 10, 0};  // row 1 is skipped
  auto f = [&] { return Vec{cross_entropy(logits.data(), targets.data(), rows, vocab)}; };
  Vec d(rows * vocab);
  cross_entropy_backward(logits.data(), targets.data(), rows, vocab, 0.5, d.data());
  EXPECT_LE(relative_error(d, numeric_gradient(logits, f, Vec{0.5})), kTolerance);
  // The loss itself: -log softmax by hand for row 0.
  double z = 0;
  for (int64_t i = 0; i < vocab; ++i) z += std::exp(logits[i]);
  const Vec single = {cross_entropy(logits.data(), targets.data(), 1, vocab)};
  EXPECT_NEAR(single[0], std::log(z) - logits[3], 1e-12);
}

TEST(BackwardTest, CausalAttentionHead) {
  const int64_t tokens = 5, dqk = 6, dv = 4, stride_qk = 9, stride_v = 7, stride_out = 5;
  Vec q = random_vec(tokens * stride_qk, 10), k = random_vec(tokens * stride_qk, 11), v = random_vec(tokens * stride_v, 12);
  const double scale = 0.4;
  Vec r = random_vec(tokens * stride_out, 13);
  for (int64_t t = 0; t < tokens; ++t) r[t * stride_out + dv] = 0;  // the padding column is not an output
  Vec probs(tokens * tokens);
  auto f = [&] {
    Vec out(tokens * stride_out, 0.0);
    causal_attention_head(q.data(), k.data(), v.data(), stride_qk, stride_v, tokens, dqk, dv, scale, probs.data(),
                          out.data(), stride_out);
    return out;
  };
  f();
  Vec dq(q.size(), 0.0), dk(k.size(), 0.0), dvv(v.size(), 0.0);
  causal_attention_head_backward(q.data(), k.data(), v.data(), stride_qk, stride_v, tokens, dqk, dv, scale,
                                 probs.data(), r.data(), stride_out, dq.data(), dk.data(), dvv.data());
  EXPECT_LE(relative_error(dq, numeric_gradient(q, f, r)), kTolerance);
  EXPECT_LE(relative_error(dk, numeric_gradient(k, f, r)), kTolerance);
  EXPECT_LE(relative_error(dvv, numeric_gradient(v, f, r)), kTolerance);
  // Causality: the first output depends on the first token only.
  Vec out = f();
  for (int64_t i = 0; i < dv; ++i) EXPECT_NEAR(out[i], v[i], 1e-12);
}

TEST(BackwardTest, Linear) {
  ThreadPool pool(2);
  const int64_t rows = 3, in = 7, out = 5;
  Vec x = random_vec(rows * in, 14), W = random_vec(out * in, 15), r = random_vec(rows * out, 16);
  auto f = [&] {
    Vec y(rows * out);
    linear(x.data(), W.data(), rows, in, out, y.data(), pool);
    return y;
  };
  Vec dx(rows * in), dW(out * in, 0.0);
  linear_backward(x.data(), W.data(), r.data(), rows, in, out, dx.data(), dW.data(), pool);
  EXPECT_LE(relative_error(dx, numeric_gradient(x, f, r)), kTolerance);
  EXPECT_LE(relative_error(dW, numeric_gradient(W, f, r)), kTolerance);
}

// The float pair runs on the blocked transposed kernel: sizes that leave partial token blocks
// (rows, out not multiples of 4), a partial column strip (in not a multiple of 64) and more
// than one run of 128 rows in each product; dW starts non-zero, since it is accumulated into.
TEST(BackwardTest, LinearInFloatMatchesDoublePrecision) {
  ThreadPool pool(2);
  const int64_t rows = 150, in = 83, out = 133;
  const Vec x = random_vec(rows * in, 17), W = random_vec(out * in, 18), dy = random_vec(rows * out, 19),
            dW0 = random_vec(out * in, 20);
  auto to_float = [](const Vec& v) { return std::vector<float>(v.begin(), v.end()); };
  const std::vector<float> xf = to_float(x), Wf = to_float(W), dyf = to_float(dy);
  std::vector<float> dx(rows * in), dW = to_float(dW0);
  linear_backward(xf.data(), Wf.data(), dyf.data(), rows, in, out, dx.data(), dW.data(), pool);
  Vec dx_expected(rows * in, 0.0), dW_expected(dW0.begin(), dW0.end());
  for (int64_t t = 0; t < rows; ++t)
    for (int64_t o = 0; o < out; ++o)
      for (int64_t i = 0; i < in; ++i) {
        // (the inputs as the float kernel saw them)
        const double g = dyf[t * out + o];
        dx_expected[t * in + i] += g * Wf[o * in + i];
        dW_expected[o * in + i] += g * xf[t * in + i];
      }
  EXPECT_LE(relative_error(Vec(dx.begin(), dx.end()), dx_expected), 1e-6);
  EXPECT_LE(relative_error(Vec(dW.begin(), dW.end()), dW_expected), 1e-6);
}

TEST(BackwardTest, EmbeddingWithRepeatedIds) {
  const int64_t vocab = 6, dim = 3;
  Vec table = random_vec(vocab * dim, 17);
  const std::vector<int32_t> ids = {2, 5, 2, 0};
  Vec r = random_vec(ids.size() * dim, 18);
  auto f = [&] {
    Vec out(ids.size() * dim);
    embedding(table.data(), ids.data(), static_cast<int64_t>(ids.size()), dim, out.data());
    return out;
  };
  Vec d(vocab * dim, 0.0);
  embedding_backward(ids.data(), r.data(), static_cast<int64_t>(ids.size()), dim, d.data());
  EXPECT_LE(relative_error(d, numeric_gradient(table, f, r)), kTolerance);
}

class GateWeightsBackwardTest : public ::testing::TestWithParam<std::pair<ScoringFunc, bool>> {};

TEST_P(GateWeightsBackwardTest, MatchesFiniteDifferences) {
  ModelConfig c;
  c.n_routed_experts = 8;
  c.num_experts_per_tok = 3;
  c.scoring_func = GetParam().first;
  c.norm_topk_prob = GetParam().second;
  c.routed_scaling_factor = 2.5;
  Vec logits = random_vec(8, 19), r = random_vec(3, 20);
  const std::vector<int32_t> experts = {6, 1, 3};
  auto f = [&] {
    Vec w(3);
    gate_weights(c, logits.data(), experts.data(), w.data());
    return w;
  };
  Vec d(8);
  gate_weights_backward(c, logits.data(), experts.data(), r.data(), d.data());
  EXPECT_LE(relative_error(d, numeric_gradient(logits, f, r)), kTolerance);
}

INSTANTIATE_TEST_SUITE_P(ScoringAndNormalisation, GateWeightsBackwardTest,
                         ::testing::Values(std::pair{ScoringFunc::Sigmoid, true}, std::pair{ScoringFunc::Sigmoid, false},
                                           std::pair{ScoringFunc::Softmax, true},
                                           std::pair{ScoringFunc::Softmax, false}));

}  // namespace
}  // namespace dsv3
