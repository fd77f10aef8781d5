// Feed-forward networks: the dense SwiGLU and DeepSeekMoE (architecture.md).
#include <algorithm>

#include "kernels/cpu/matmul.h"
#include "kernels/cpu/swiglu.h"
#include "model/model.h"
#include "model/router.h"

namespace dsv3 {

void Model::swiglu_in_place(float* gate, const float* up, int64_t n) {
  in_parallel(n, 1, [&](int64_t i0, int64_t i1) { swiglu(gate + i0, up + i0, i1 - i0, gate + i0); });
}

void Model::swiglu_ffn(const SwiGluWeights& w, const float* x, int64_t T, float* out) {
  const int64_t width = w.gate.rows;
  float* gate = ws_.gate.get(T * width);
  float* up = ws_.up.get(T * width);
  const MatmulJob gate_up[] = {{&w.gate, x, w.gate.cols, T, gate, width}, {&w.up, x, w.up.cols, T, up, width}};
  matmul_batch(gate_up, pool_, input_);
  swiglu_in_place(gate, up, T * width);
  matmul(w.down, gate, T, out, pool_, input_);
}

void Model::moe(const MoeWeights& w, const float* xn, int64_t T, float* out) {
  const ModelConfig& c = config_;
  const int64_t d = c.hidden_size, n = c.n_routed_experts, k = c.num_experts_per_tok;

  float* logits = ws_.router.get(T * n);
  matmul(w.router, xn, T, logits, pool_);
  ws_.expert_ids.resize(static_cast<size_t>(T * k));
  ws_.expert_weights.resize(static_cast<size_t>(T * k));
  float* scratch = ws_.routing_scratch.get(3 * n);
  const float* bias = w.correction_bias.empty() ? nullptr : w.correction_bias.data();
  for (int64_t t = 0; t < T; ++t)
    route_token(c, logits + t * n, bias, scratch, ws_.expert_ids.data() + t * k, ws_.expert_weights.data() + t * k);

  // The experts of this pass: the shared one (every token), then each routed expert with
  // tokens, in expert order (a shard: its own experts). Their token rows are gathered one run
  // after another; the projections of all runs go to the pool together, gate and up first,
  // then down, so that a few tokens' small experts keep every thread busy.
  const bool sharded = expert_count_ > 0;
  auto& runs = ws_.expert_runs;
  auto& slots = ws_.token_order;  // the routed rows' token * k + slot, in run order
  runs.clear();
  slots.clear();
  int64_t rows = 0, hidden = 0;
  if (!w.shared.empty()) {
    runs.push_back({-1, 0, T, 0});
    rows = T;
    hidden = T * w.shared.gate.rows;
  }
  for (int64_t e = sharded ? first_expert_ : 0; e < (sharded ? first_expert_ + expert_count_ : n); ++e) {
    const size_t before = slots.size();
    for (int64_t i = 0; i < T * k; ++i)
      if (ws_.expert_ids[i] == e) slots.push_back(static_cast<int32_t>(i));
    const int64_t count = static_cast<int64_t>(slots.size() - before);
    if (count == 0) continue;
    runs.push_back({e, rows, count, hidden});
    rows += count;
    hidden += count * w.experts[e].gate.rows;
  }
  const int64_t shared_rows = w.shared.empty() ? 0 : T;
  float* expert_in = ws_.expert_in.get(rows * d);
  float* expert_out = ws_.expert_out.get(rows * d);
  float* gate = ws_.gate.get(hidden);
  float* up = ws_.up.get(hidden);
  std::copy_n(xn, shared_rows * d, expert_in);
  in_parallel(static_cast<int64_t>(slots.size()), d, [&](int64_t j0, int64_t j1) {
    for (int64_t j = j0; j < j1; ++j) std::copy_n(xn + (slots[j] / k) * d, d, expert_in + (shared_rows + j) * d);
  });

  auto& jobs = ws_.matmul_jobs;
  auto weights_of = [&](const ExpertRun& run) -> const SwiGluWeights& {
    return run.expert < 0 ? w.shared : w.experts[run.expert];
  };
  jobs.clear();
  for (const ExpertRun& run : runs) {
    const SwiGluWeights& ew = weights_of(run);
    const int64_t width = ew.gate.rows;
    jobs.push_back({&ew.gate, expert_in + run.first_row * d, d, run.rows, gate + run.hidden_at, width});
    jobs.push_back({&ew.up, expert_in + run.first_row * d, d, run.rows, up + run.hidden_at, width});
  }
  matmul_batch(jobs, pool_, input_);
  swiglu_in_place(gate, up, hidden);
  jobs.clear();
  for (const ExpertRun& run : runs) {
    const SwiGluWeights& ew = weights_of(run);
    jobs.push_back({&ew.down, gate + run.hidden_at, ew.gate.rows, run.rows, expert_out + run.first_row * d, d});
  }
  matmul_batch(jobs, pool_, input_);

  // Shared experts see every token; routed experts add their weighted outputs in expert
  // order, so each token's sum has a fixed order whatever the thread count. A shard of the
  // experts sums its part apart, then all shards' parts are added up.
  // (On the pool by columns: each task adds every slot's part of its columns, in slot order.)
  float* routed = sharded ? ws_.routed.get(T * d) : out;
  const int64_t routed_rows = static_cast<int64_t>(slots.size());
  in_parallel(d, T + routed_rows, [&](int64_t c0, int64_t c1) {
    for (int64_t t = 0; t < T; ++t) {
      float* o = out + t * d;
      if (shared_rows > 0) {
        std::copy(expert_out + t * d + c0, expert_out + t * d + c1, o + c0);
      } else {
        std::fill(o + c0, o + c1, 0.0f);
      }
      if (sharded) std::fill(routed + t * d + c0, routed + t * d + c1, 0.0f);
    }
    for (int64_t j = 0; j < routed_rows; ++j) {
      const float g = ws_.expert_weights[slots[j]];
      const float* y = expert_out + (shared_rows + j) * d;
      float* o = routed + (slots[j] / k) * d;
      for (int64_t i = c0; i < c1; ++i) o[i] += g * y[i];
    }
  });
  if (sharded) {
    sum_over_shards_(routed, T * d);
    for (int64_t i = 0; i < T * d; ++i) out[i] += routed[i];
  }
}

}  // namespace dsv3
