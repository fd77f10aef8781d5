#include "train/train_model.h"

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "base/error.h"
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

template <typename T>
using Buf = std::vector<T>;

template <typename T>
Buf<T> zeros(int64_t n) {
  return Buf<T>(static_cast<size_t>(n), T(0));
}

template <typename T>
void add_into(T* y, const T* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

// For each group of received rows (an owned expert's rows from one source rank): gathers them
// from `in` (rows of d values), runs fn(group, rows, count, results) and scatters the results
// into the same rows of `out`.
template <typename T, typename Fn>
void on_each_group(const std::vector<std::vector<int32_t>>& groups, int64_t d, const Buf<T>& in, Buf<T>& out,
                   Fn fn) {
  Buf<T> rows_in, rows_out;
  for (size_t group = 0; group < groups.size(); ++group) {
    const auto& rows = groups[group];
    if (rows.empty()) continue;
    const int64_t count = static_cast<int64_t>(rows.size());
    rows_in.resize(static_cast<size_t>(count * d));
    rows_out.resize(rows_in.size());
    for (int64_t j = 0; j < count; ++j) std::copy_n(&in[rows[j] * d], d, &rows_in[j * d]);
    fn(group, rows_in.data(), count, rows_out.data());
    for (int64_t j = 0; j < count; ++j) std::copy_n(&rows_out[j * d], d, &out[rows[j] * d]);
  }
}

// The expert loads of MoE layer `moe_index` inside the run's counts, grown (never shrunk: the
// counts add up over the sequences of a step) to hold it.
int64_t* expert_counts_of(std::vector<int64_t>& counts, int64_t moe_index, int64_t experts) {
  const size_t needed = static_cast<size_t>((moe_index + 1) * experts);
  if (counts.size() < needed) counts.resize(needed, 0);
  return counts.data() + moe_index * experts;
}

}  // namespace

template <typename T>
struct TrainModel<T>::SwiGluCache {
  Buf<T> x, gate, up, h;  // input rows, the two projections, the activation
  int64_t rows = 0;
};

template <typename T>
struct TrainModel<T>::MoeCache {
  Buf<T> logits;                     // [n][n_routed]
  std::vector<int32_t> experts;      // [n][k]
  Buf<T> weights;                    // [n][k]
  // The expert exchange: slots t * k + j in the order their rows were sent (by expert, so by
  // owner rank), the experts' outputs for them, and on the owner's side the received rows of
  // each owned expert with the caches of its SwiGLU.
  RowExchange exchange{nullptr};
  std::vector<int32_t> sent_slots;
  Buf<T> sent_out;                          // [sent][d]
  // Received row indices per (owned expert, source rank), expert-major, and the SwiGLU caches.
  std::vector<std::vector<int32_t>> groups;
  std::vector<SwiGluCache> group_caches;
  SwiGluCache shared;
  Buf<T> scores;                     // balance loss: [n][n_routed] unbiased affinities
  Buf<T> score_sums;                 // [n]
  std::vector<double> load_share;    // f_i
};

template <typename T>
struct TrainModel<T>::BlockCache {
  Buf<T> x_in, xn1, q_a, q_a_normed, q, kv, latent_raw, latent, kv_b, keys, probs, o, x_mid, xn2;
  SwiGluCache dense;
  MoeCache moe;
};

template <typename T>
TrainModel<T>::TrainModel(ModelConfig config, ThreadPool& pool)
    : config_(std::move(config)), pool_(pool), rope_(rope_params(config_)), owned_experts_(config_.n_routed_experts) {}

template <typename T>
void TrainModel<T>::set_expert_parallel(Communicator& comm) {
  const int64_t E = config_.n_routed_experts, ranks = comm.size();
  if (E % ranks != 0) fail("expert parallelism over ", ranks, " ranks needs n_routed_experts (", E, ") divisible by it");
  expert_comm_ = &comm;
  owned_experts_ = E / ranks;
  first_expert_ = comm.rank() * owned_experts_;
}

// ---- Projections: the linear layers whose GEMMs run at the chosen precision -----------

template <typename T>
void TrainModel<T>::set_projection_precision(GemmPrecision precision) {
  if constexpr (!std::is_same_v<T, float>) {
    if (precision != GemmPrecision::kF32) fail("lower-precision projections need FP32 training");
  }
  projection_precision_ = precision;
}

template <typename T>
void TrainModel<T>::project(const T* x, const T* W, int64_t n, int64_t in, int64_t out, T* y) {
  if constexpr (std::is_same_v<T, float>) {
    quantized_linear(projection_precision_, x, W, n, in, out, y, pool_);
  } else {
    linear(x, W, n, in, out, y, pool_);
  }
}

template <typename T>
void TrainModel<T>::project_backward(const T* x, const T* W, const T* dy, int64_t n, int64_t in, int64_t out, T* dx,
                                     T* dW) {
  linear_backward_at(projection_precision_, x, W, dy, n, in, out, dx, dW);
}

// The two GEMMs of a linear backward are independent (quantized_linear_backward computes each
// from the same inputs whether or not the other runs), so splitting them changes no bit.
template <typename T>
void TrainModel<T>::linear_backward_at(GemmPrecision precision, const T* x, const T* W, const T* dy, int64_t n,
                                       int64_t in, int64_t out, T* dx, T* dW) {
  T* dW_now = deferred_ ? nullptr : dW;
  if constexpr (std::is_same_v<T, float>) {
    quantized_linear_backward(precision, x, W, dy, n, in, out, dx, dW_now, pool_);
  } else {
    linear_backward(x, W, dy, n, in, out, dx, dW_now, pool_);
  }
  if (deferred_ && dW) deferred_->push_back({precision, x, W, std::vector<T>(dy, dy + n * out), n, in, out, dW});
}

template <typename T>
void TrainModel<T>::weight_gradients(DeferredWeightGradients& deferred) {
  for (WeightGradientGemm& g : deferred) {
    if constexpr (std::is_same_v<T, float>) {
      quantized_linear_backward(g.precision, g.x, g.W, g.dy.data(), g.rows, g.in, g.out, nullptr, g.dW, pool_);
    } else {
      linear_backward(g.x, g.W, g.dy.data(), g.rows, g.in, g.out, static_cast<T*>(nullptr), g.dW, pool_);
    }
  }
  deferred.clear();
}

// ---- SwiGLU feed-forward -------------------------------------------------------------

template <typename T>
void TrainModel<T>::swiglu_forward(const SwiGlu& w, const T* x, int64_t n, SwiGluCache& c, T* out) {
  const int64_t d = config_.hidden_size, width = w.gate.rows;
  c.rows = n;
  c.x.assign(x, x + n * d);
  c.gate.resize(static_cast<size_t>(n * width));
  c.up.resize(c.gate.size());
  c.h.resize(c.gate.size());
  project(x, w.gate.data, n, d, width, c.gate.data());
  project(x, w.up.data, n, d, width, c.up.data());
  swiglu(c.gate.data(), c.up.data(), n * width, c.h.data());
  project(c.h.data(), w.down.data, n, width, d, out);
}

template <typename T>
void TrainModel<T>::swiglu_backward(const SwiGlu& w, const SwiGluCache& c, const T* dout, T* dx, SwiGlu& g) {
  const int64_t d = config_.hidden_size, width = w.gate.rows, n = c.rows;
  Buf<T> dh(static_cast<size_t>(n * width)), dgate(dh.size()), dup(dh.size()), dx_up(static_cast<size_t>(n * d));
  project_backward(c.h.data(), w.down.data, dout, n, width, d, dh.data(), g.down.data);
  dsv3::swiglu_backward(c.gate.data(), c.up.data(), dh.data(), n * width, dgate.data(), dup.data());
  project_backward(c.x.data(), w.gate.data, dgate.data(), n, d, width, dx, g.gate.data);
  project_backward(c.x.data(), w.up.data, dup.data(), n, d, width, dx_up.data(), g.up.data);
  add_into(dx, dx_up.data(), n * d);
}

// ---- MoE -----------------------------------------------------------------------------

template <typename T>
void TrainModel<T>::moe_forward(const Moe& m, const T* xn, int64_t n, MoeCache& c, T* out, int64_t* counts) {
  const ModelConfig& cfg = config_;
  const int64_t d = cfg.hidden_size, E = cfg.n_routed_experts, k = cfg.num_experts_per_tok;
  c.logits.resize(static_cast<size_t>(n * E));
  linear(xn, m.router.data, n, d, E, c.logits.data(), pool_);
  c.experts.resize(static_cast<size_t>(n * k));
  c.weights.resize(static_cast<size_t>(n * k));
  // The choice is made in FP32 from the logits, as in inference; the weights follow in T.
  std::vector<float> logits_f(static_cast<size_t>(E)), bias_f, scratch(static_cast<size_t>(3 * E)), unused(k);
  if (!m.correction_bias.empty()) bias_f.assign(m.correction_bias.data, m.correction_bias.data + E);
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t e = 0; e < E; ++e) logits_f[e] = static_cast<float>(c.logits[t * E + e]);
    route_token(cfg, logits_f.data(), bias_f.empty() ? nullptr : bias_f.data(), scratch.data(), &c.experts[t * k],
                unused.data());
    gate_weights(cfg, &c.logits[t * E], &c.experts[t * k], &c.weights[t * k]);
  }

  if (balance_alpha_ > 0) balance_forward(c, n);

  if (!m.shared.empty()) {
    swiglu_forward(m.shared, xn, n, c.shared, out);
  } else {
    std::fill(out, out + n * d, T(0));
  }
  if (counts)
    for (int64_t i = 0; i < n * k; ++i) ++counts[c.experts[i]];

  // Dispatch: each slot's row to the owner of its expert, in expert order.
  const int64_t ranks = expert_comm_ ? expert_comm_->size() : 1;
  std::vector<std::vector<int32_t>> slots_of(static_cast<size_t>(E));
  for (int64_t i = 0; i < n * k; ++i) slots_of[c.experts[i]].push_back(static_cast<int32_t>(i));
  std::vector<int64_t> send_rows(static_cast<size_t>(ranks), 0);
  c.sent_slots.clear();
  for (int64_t e = 0; e < E; ++e) {
    c.sent_slots.insert(c.sent_slots.end(), slots_of[e].begin(), slots_of[e].end());
    send_rows[e / owned_experts_] += static_cast<int64_t>(slots_of[e].size());
  }
  c.exchange = RowExchange(expert_comm_);
  c.exchange.plan(send_rows, "exchanging expert row counts");
  const int64_t sent = c.exchange.sent_rows(), received = c.exchange.received_rows();
  Buf<T> send_x(static_cast<size_t>(sent * d)), recv_x(static_cast<size_t>(received * d));
  std::vector<int32_t> send_expert(static_cast<size_t>(sent)), recv_expert(static_cast<size_t>(received));
  for (int64_t j = 0; j < sent; ++j) {
    std::copy_n(xn + (c.sent_slots[j] / k) * d, d, &send_x[j * d]);
    send_expert[j] = c.experts[c.sent_slots[j]];
  }
  exchange_rows(c.exchange, true, dispatch_payload(), send_x.data(), recv_x.data(), "dispatching tokens to experts");
  c.exchange.dispatch(send_expert.data(), recv_expert.data(), sizeof(int32_t), "dispatching expert ids");
  count_dispatch(c, send_rows, n);

  // The owned experts, each on the rows of each source rank apart: those are exactly the rows
  // one process would give it for that rank's sequence, so every product (and every FP8 tile)
  // is the one-process one, whatever the rank count.
  c.groups.assign(static_cast<size_t>(owned_experts_ * ranks), {});
  int64_t source = 0, source_end = c.exchange.received_from()[0];
  for (int64_t r = 0; r < received; ++r) {
    while (r >= source_end) source_end += c.exchange.received_from()[static_cast<size_t>(++source)];
    const int64_t local = recv_expert[r] - first_expert_;
    if (local < 0 || local >= owned_experts_) fail("received a token for expert ", recv_expert[r], " owned elsewhere");
    c.groups[static_cast<size_t>(local * ranks + source)].push_back(static_cast<int32_t>(r));
  }
  c.group_caches.resize(c.groups.size());
  Buf<T> recv_y(recv_x.size());
  on_each_group(c.groups, d, recv_x, recv_y, [&](size_t group, const T* x, int64_t count, T* y) {
    swiglu_forward(m.experts[first_expert_ + static_cast<int64_t>(group) / ranks], x, count, c.group_caches[group], y);
  });

  // Combine: the outputs come back to the slots that sent them, weighted into their tokens.
  c.sent_out.resize(send_x.size());
  exchange_rows(c.exchange, false, combine_payload(), recv_y.data(), c.sent_out.data(), "combining expert outputs");
  for (int64_t j = 0; j < sent; ++j) {
    const T gw = c.weights[c.sent_slots[j]];
    T* o = out + (c.sent_slots[j] / k) * d;
    for (int64_t i = 0; i < d; ++i) o[i] += gw * c.sent_out[j * d + i];
  }
}

template <typename T>
RowPayload TrainModel<T>::dispatch_payload() const {
  return projection_precision_ == GemmPrecision::kFP8    ? RowPayload::kFP8
         : projection_precision_ == GemmPrecision::kBF16 ? RowPayload::kBF16
                                                         : RowPayload::kF32;
}

template <typename T>
RowPayload TrainModel<T>::combine_payload() const {
  return projection_precision_ == GemmPrecision::kF32 ? RowPayload::kF32 : RowPayload::kBF16;
}

template <typename T>
void TrainModel<T>::exchange_rows(const RowExchange& exchange, bool to_owners, RowPayload payload, const T* in,
                                  T* out, const char* what) const {
  const int64_t d = config_.hidden_size;
  const int64_t in_rows = to_owners ? exchange.sent_rows() : exchange.received_rows();
  const int64_t out_rows = to_owners ? exchange.received_rows() : exchange.sent_rows();
  auto trip = [&](const void* from, void* to, int64_t row_bytes) {
    if (to_owners) {
      exchange.dispatch(from, to, row_bytes, what);
    } else {
      exchange.combine(from, to, row_bytes, what);
    }
  };
  if constexpr (std::is_same_v<T, float>) {
    if (payload != RowPayload::kF32) {
      const int64_t row_bytes = payload_row_bytes(payload, d);
      std::vector<uint8_t> packed(static_cast<size_t>(in_rows * row_bytes)), arrived(static_cast<size_t>(out_rows * row_bytes));
      encode_rows(payload, in, in_rows, d, packed.data());
      trip(packed.data(), arrived.data(), row_bytes);
      decode_rows(payload, arrived.data(), out_rows, d, out);
      return;
    }
  }
  trip(in, out, d * int64_t(sizeof(T)));
}

template <typename T>
void TrainModel<T>::count_dispatch(const MoeCache& c, const std::vector<int64_t>& send_rows, int64_t n) {
  if (!expert_comm_ || expert_comm_->size() == 1) return;
  const int64_t d = config_.hidden_size, k = config_.num_experts_per_tok, self = expert_comm_->rank();
  const int64_t remote = c.exchange.sent_rows() - send_rows[self];
  dispatch_stats_.rows_out += remote;
  // Forward out (and the expert id) and back, backward out and back.
  const int64_t forward = payload_row_bytes(dispatch_payload(), d) + int64_t(sizeof(int32_t)) +
                          payload_row_bytes(combine_payload(), d);
  dispatch_stats_.bytes_out += remote * (forward + 2 * d * int64_t(sizeof(T)));
  for (int64_t t = 0; t < n; ++t) {
    std::vector<int64_t> owners;
    for (int64_t j = 0; j < k; ++j) owners.push_back(c.experts[t * k + j] / owned_experts_);
    std::sort(owners.begin(), owners.end());
    const int64_t reached = std::unique(owners.begin(), owners.end()) - owners.begin();
    dispatch_stats_.max_ranks_per_token = std::max(dispatch_stats_.max_ranks_per_token, reached);
  }
}

template <typename T>
void TrainModel<T>::moe_backward(const Moe& m, const MoeCache& c, const T* xn, int64_t n, const T* dout, T* dxn,
                                 Moe& g) {
  const ModelConfig& cfg = config_;
  const int64_t d = cfg.hidden_size, E = cfg.n_routed_experts, k = cfg.num_experts_per_tok;
  if (!m.shared.empty()) {
    swiglu_backward(m.shared, c.shared, dout, dxn, g.shared);
  } else {
    std::fill(dxn, dxn + n * d, T(0));
  }
  // The gradient of each sent row goes to its expert's owner (gate weight applied here, where
  // the gate is), the input gradient comes back the same way.
  const int64_t sent = c.exchange.sent_rows(), received = c.exchange.received_rows();
  Buf<T> dweights = zeros<T>(n * k), send_dy(static_cast<size_t>(sent * d)), recv_dy(static_cast<size_t>(received * d));
  for (int64_t j = 0; j < sent; ++j) {
    const int32_t slot = c.sent_slots[j];
    const T* dot = dout + (slot / k) * d;
    const T* y = &c.sent_out[j * d];
    T dw = 0;
    for (int64_t i = 0; i < d; ++i) {
      send_dy[j * d + i] = c.weights[slot] * dot[i];
      dw += dot[i] * y[i];
    }
    dweights[slot] = dw;
  }
  exchange_rows(c.exchange, true, RowPayload::kF32, send_dy.data(), recv_dy.data(),
                "dispatching expert output gradients");
  Buf<T> recv_dx(recv_dy.size());
  const int64_t ranks = c.exchange.ranks();
  on_each_group(c.groups, d, recv_dy, recv_dx, [&](size_t group, const T* dy, int64_t, T* dx) {
    const int64_t e = first_expert_ + static_cast<int64_t>(group) / ranks;
    swiglu_backward(m.experts[e], c.group_caches[group], dy, dx, g.experts[e]);
    // Each source rank's share of the expert's gradient is one sequence's: into the step's sum
    // on its own, as one process adds each sequence's.
    if (ranks > 1 && flush_) {
      auto& ge = g.experts[e];
      for (auto* matrix : {&ge.gate, &ge.up, &ge.down}) flush_(matrix->data, matrix->rows * matrix->cols);
    }
  });
  Buf<T> send_dx(send_dy.size());
  exchange_rows(c.exchange, false, RowPayload::kF32, recv_dx.data(), send_dx.data(),
                "combining expert input gradients");
  for (int64_t j = 0; j < sent; ++j) add_into(dxn + (c.sent_slots[j] / k) * d, &send_dx[j * d], d);
  Buf<T> dlogits(static_cast<size_t>(n * E)), dx_router(static_cast<size_t>(n * d));
  for (int64_t t = 0; t < n; ++t)
    gate_weights_backward(cfg, &c.logits[t * E], &c.experts[t * k], &dweights[t * k], &dlogits[t * E]);
  if (balance_alpha_ > 0) balance_backward(c, n, dlogits.data());
  linear_backward_at(GemmPrecision::kF32, xn, m.router.data, dlogits.data(), n, d, E, dx_router.data(),
                     g.router.data);
  add_into(dxn, dx_router.data(), n * d);
}

template <typename T>
void TrainModel<T>::balance_forward(MoeCache& c, int64_t n) {
  const ModelConfig& cfg = config_;
  const int64_t E = cfg.n_routed_experts, k = cfg.num_experts_per_tok;
  c.scores.resize(static_cast<size_t>(n * E));
  c.score_sums.resize(static_cast<size_t>(n));
  c.load_share.assign(static_cast<size_t>(E), 0.0);
  for (int64_t i = 0; i < n * k; ++i) c.load_share[c.experts[i]] += double(E) / double(k * n);
  std::vector<double> mean_share(static_cast<size_t>(E), 0.0);
  for (int64_t t = 0; t < n; ++t) {
    const T* z = &c.logits[t * E];
    T* s = &c.scores[t * E];
    if (cfg.scoring_func == ScoringFunc::Sigmoid) {
      for (int64_t e = 0; e < E; ++e) s[e] = T(1) / (T(1) + std::exp(-z[e]));
    } else {
      const T max = *std::max_element(z, z + E);
      T sum = 0;
      for (int64_t e = 0; e < E; ++e) sum += s[e] = std::exp(z[e] - max);
      for (int64_t e = 0; e < E; ++e) s[e] /= sum;
    }
    T sum = 0;
    for (int64_t e = 0; e < E; ++e) sum += s[e];
    c.score_sums[t] = sum;
    for (int64_t e = 0; e < E; ++e) mean_share[e] += double(s[e] / sum) / double(n);
  }
  double loss = 0;
  for (int64_t e = 0; e < E; ++e) loss += c.load_share[e] * mean_share[e];
  balance_total_ += balance_alpha_ * loss;
}

template <typename T>
void TrainModel<T>::balance_backward(const MoeCache& c, int64_t n, T* dlogits) {
  const ModelConfig& cfg = config_;
  const int64_t E = cfg.n_routed_experts;
  std::vector<T> ds(static_cast<size_t>(E));
  for (int64_t t = 0; t < n; ++t) {
    const T* s = &c.scores[t * E];
    const T sum = c.score_sums[t];
    // dL/ds_j = alpha/n * (f_j - sum_i f_i s'_i) / S through s'_i = s_i / S.
    double weighted = 0;
    for (int64_t e = 0; e < E; ++e) weighted += c.load_share[e] * double(s[e] / sum);
    for (int64_t e = 0; e < E; ++e)
      ds[e] = static_cast<T>(balance_alpha_ / double(n) * (c.load_share[e] - weighted) / double(sum));
    T* dz = dlogits + t * E;
    if (cfg.scoring_func == ScoringFunc::Sigmoid) {
      for (int64_t e = 0; e < E; ++e) dz[e] += ds[e] * s[e] * (T(1) - s[e]);
    } else {
      T p_ds = 0;
      for (int64_t e = 0; e < E; ++e) p_ds += s[e] * ds[e];
      for (int64_t e = 0; e < E; ++e) dz[e] += s[e] * (ds[e] - p_ds);
    }
  }
}

// ---- MLA attention (plain form) --------------------------------------------------------

template <typename T>
void TrainModel<T>::attention_forward(const Attention& a, const T* xn, int64_t n, BlockCache& c, T* out) {
  const ModelConfig& cfg = config_;
  const int64_t d = cfg.hidden_size, H = cfg.num_attention_heads, nope = cfg.qk_nope_head_dim;
  const int64_t rope = cfg.qk_rope_head_dim, R = cfg.kv_lora_rank, vd = cfg.v_head_dim, qk = cfg.qk_head_dim();
  const int64_t half = rope / 2;
  const T eps = static_cast<T>(cfg.rms_norm_eps);

  c.q.resize(static_cast<size_t>(n * H * qk));
  if (cfg.q_lora_rank > 0) {
    const int64_t rq = cfg.q_lora_rank;
    c.q_a.resize(static_cast<size_t>(n * rq));
    c.q_a_normed.resize(c.q_a.size());
    project(xn, a.q_a.data, n, d, rq, c.q_a.data());
    rmsnorm(c.q_a.data(), rq, n, rq, a.q_a_norm.data, eps, c.q_a_normed.data(), rq);
    project(c.q_a_normed.data(), a.q_b.data, n, rq, H * qk, c.q.data());
  } else {
    project(xn, a.q.data, n, d, H * qk, c.q.data());
  }
  for (int64_t t = 0; t < n; ++t)
    for (int64_t h = 0; h < H; ++h) rope_apply(&c.q[(t * H + h) * qk + nope], rope, &cos_[t * half], &sin_[t * half]);

  c.kv.resize(static_cast<size_t>(n * (R + rope)));
  project(xn, a.kv_a.data, n, d, R + rope, c.kv.data());
  c.latent_raw.resize(static_cast<size_t>(n * R));
  c.latent.resize(c.latent_raw.size());
  for (int64_t t = 0; t < n; ++t) std::copy_n(&c.kv[t * (R + rope)], R, &c.latent_raw[t * R]);
  rmsnorm(c.latent_raw.data(), R, n, R, a.kv_a_norm.data, eps, c.latent.data(), R);
  c.kv_b.resize(static_cast<size_t>(n * H * (nope + vd)));
  project(c.latent.data(), a.kv_b.data, n, R, H * (nope + vd), c.kv_b.data());

  // Per-head keys [k_nope | shared rotated k_pe].
  c.keys.resize(static_cast<size_t>(n * H * qk));
  for (int64_t t = 0; t < n; ++t) {
    Buf<T> k_pe(&c.kv[t * (R + rope) + R], &c.kv[t * (R + rope) + R] + rope);
    rope_apply(k_pe.data(), rope, &cos_[t * half], &sin_[t * half]);
    for (int64_t h = 0; h < H; ++h) {
      std::copy_n(&c.kv_b[(t * H + h) * (nope + vd)], nope, &c.keys[(t * H + h) * qk]);
      std::copy_n(k_pe.data(), rope, &c.keys[(t * H + h) * qk + nope]);
    }
  }
  c.probs.resize(static_cast<size_t>(H * n * n));
  c.o.resize(static_cast<size_t>(n * H * vd));
  pool_.parallel_for(static_cast<size_t>(H), [&](size_t hi) {
    const int64_t h = static_cast<int64_t>(hi);
    causal_attention_head(&c.q[h * qk], &c.keys[h * qk], &c.kv_b[h * (nope + vd) + nope], H * qk, H * (nope + vd), n,
                          qk, vd, static_cast<T>(rope_.softmax_scale), &c.probs[h * n * n], &c.o[h * vd], H * vd);
  });
  project(c.o.data(), a.o.data, n, H * vd, d, out);
}

template <typename T>
void TrainModel<T>::attention_backward(const Attention& a, const BlockCache& c, int64_t n, const T* dout, T* dxn,
                                       Attention& g) {
  const ModelConfig& cfg = config_;
  const int64_t d = cfg.hidden_size, H = cfg.num_attention_heads, nope = cfg.qk_nope_head_dim;
  const int64_t rope = cfg.qk_rope_head_dim, R = cfg.kv_lora_rank, vd = cfg.v_head_dim, qk = cfg.qk_head_dim();
  const int64_t half = rope / 2;
  const T eps = static_cast<T>(cfg.rms_norm_eps);

  Buf<T> d_o(c.o.size()), dq(c.q.size()), dkeys(c.keys.size()), dkv_b = zeros<T>(n * H * (nope + vd));
  project_backward(c.o.data(), a.o.data, dout, n, H * vd, d, d_o.data(), g.o.data);
  pool_.parallel_for(static_cast<size_t>(H), [&](size_t hi) {
    const int64_t h = static_cast<int64_t>(hi);
    causal_attention_head_backward(&c.q[h * qk], &c.keys[h * qk], &c.kv_b[h * (nope + vd) + nope], H * qk,
                                   H * (nope + vd), n, qk, vd, static_cast<T>(rope_.softmax_scale),
                                   &c.probs[h * n * n], &d_o[h * vd], H * vd, &dq[h * qk], &dkeys[h * qk],
                                   &dkv_b[h * (nope + vd) + nope]);
  });
  // Keys: the nope part goes back to kv_b's output, the shared rope part sums over heads.
  Buf<T> dkv = zeros<T>(n * (R + rope));
  for (int64_t t = 0; t < n; ++t) {
    T* dk_pe = &dkv[t * (R + rope) + R];
    for (int64_t h = 0; h < H; ++h) {
      std::copy_n(&dkeys[(t * H + h) * qk], nope, &dkv_b[(t * H + h) * (nope + vd)]);
      add_into(dk_pe, &dkeys[(t * H + h) * qk + nope], rope);
      rope_apply_backward(&dq[(t * H + h) * qk + nope], rope, &cos_[t * half], &sin_[t * half]);
    }
    rope_apply_backward(dk_pe, rope, &cos_[t * half], &sin_[t * half]);
  }
  Buf<T> dlatent(static_cast<size_t>(n * R)), dlatent_raw(dlatent.size());
  project_backward(c.latent.data(), a.kv_b.data, dkv_b.data(), n, R, H * (nope + vd), dlatent.data(),
                   g.kv_b.data);
  rmsnorm_backward(c.latent_raw.data(), dlatent.data(), n, R, a.kv_a_norm.data, eps, dlatent_raw.data(),
                   g.kv_a_norm.data);
  for (int64_t t = 0; t < n; ++t) std::copy_n(&dlatent_raw[t * R], R, &dkv[t * (R + rope)]);
  project_backward(c.xn1.data(), a.kv_a.data, dkv.data(), n, d, R + rope, dxn, g.kv_a.data);

  Buf<T> dx_q(static_cast<size_t>(n * d));
  if (cfg.q_lora_rank > 0) {
    const int64_t rq = cfg.q_lora_rank;
    Buf<T> dq_a_normed(c.q_a.size()), dq_a(c.q_a.size());
    project_backward(c.q_a_normed.data(), a.q_b.data, dq.data(), n, rq, H * qk, dq_a_normed.data(), g.q_b.data);
    rmsnorm_backward(c.q_a.data(), dq_a_normed.data(), n, rq, a.q_a_norm.data, eps, dq_a.data(), g.q_a_norm.data);
    project_backward(c.xn1.data(), a.q_a.data, dq_a.data(), n, d, rq, dx_q.data(), g.q_a.data);
  } else {
    project_backward(c.xn1.data(), a.q.data, dq.data(), n, d, H * qk, dx_q.data(), g.q.data);
  }
  add_into(dxn, dx_q.data(), n * d);
}

// ---- Decoder block -----------------------------------------------------------------------

template <typename T>
void TrainModel<T>::block_forward(const Layer& l, const T* x_in, int64_t n, BlockCache& c, T* x_out, int64_t* counts) {
  const int64_t d = config_.hidden_size;
  const T eps = static_cast<T>(config_.rms_norm_eps);
  c.x_in.assign(x_in, x_in + n * d);
  c.xn1.resize(c.x_in.size());
  rmsnorm(x_in, d, n, d, l.attn_norm.data, eps, c.xn1.data(), d);
  Buf<T> out(c.x_in.size());
  attention_forward(l.attn, c.xn1.data(), n, c, out.data());
  c.x_mid = c.x_in;
  add_into(c.x_mid.data(), out.data(), n * d);
  c.xn2.resize(c.x_in.size());
  rmsnorm(c.x_mid.data(), d, n, d, l.ffn_norm.data, eps, c.xn2.data(), d);
  if (l.is_moe) {
    moe_forward(l.moe, c.xn2.data(), n, c.moe, out.data(), counts);
  } else {
    swiglu_forward(l.dense, c.xn2.data(), n, c.dense, out.data());
  }
  for (int64_t i = 0; i < n * d; ++i) x_out[i] = c.x_mid[i] + out[i];
}

template <typename T>
void TrainModel<T>::block_backward(const Layer& l, const BlockCache& c, int64_t n, const T* dx_out, T* dx_in, Layer& g) {
  const int64_t d = config_.hidden_size;
  const T eps = static_cast<T>(config_.rms_norm_eps);
  Buf<T> dxn(static_cast<size_t>(n * d)), dnorm(dxn.size()), dx_mid(dx_out, dx_out + n * d);
  if (l.is_moe) {
    moe_backward(l.moe, c.moe, c.xn2.data(), n, dx_out, dxn.data(), g.moe);
  } else {
    swiglu_backward(l.dense, c.dense, dx_out, dxn.data(), g.dense);
  }
  rmsnorm_backward(c.x_mid.data(), dxn.data(), n, d, l.ffn_norm.data, eps, dnorm.data(), g.ffn_norm.data);
  add_into(dx_mid.data(), dnorm.data(), n * d);
  attention_backward(l.attn, c, n, dx_mid.data(), dxn.data(), g.attn);
  rmsnorm_backward(c.x_in.data(), dxn.data(), n, d, l.attn_norm.data, eps, dnorm.data(), g.attn_norm.data);
  for (int64_t i = 0; i < n * d; ++i) dx_in[i] = dx_mid[i] + dnorm[i];
}

// ---- Pipeline stages and the whole model ---------------------------------------------------

template <typename T>
struct TrainModel<T>::StageState {
  int64_t n = 0;
  const int32_t* tokens = nullptr;
  std::vector<BlockCache> caches;  // the stage's layers
  // The last stage: the residual stream before the final norm, its output, logits and targets,
  // and the MTP module's activations.
  Buf<T> x_last, hidden, logits;
  std::vector<int32_t> targets, mtp_targets;
  BlockCache mtp_cache;
  Buf<T> embedded, concat, mtp_x, mtp_out, mtp_hidden, mtp_logits;
};

template <typename T>
std::vector<typename TrainModel<T>::Stage> TrainModel<T>::pipeline_stages(const ModelConfig& config, int64_t count) {
  const int64_t L = config.num_hidden_layers;
  if (count < 1 || count > L)
    fail("cannot cut ", L, " decoder layers into ", count, " pipeline stages (each needs at least one layer)");
  std::vector<Stage> stages;
  for (int64_t s = 0; s < count; ++s) stages.push_back({s * L / count, (s + 1) * L / count, s + 1 == count});
  return stages;
}

template <typename T>
void TrainModel<T>::prepare_positions(int64_t n) {
  const int64_t half = config_.qk_rope_head_dim / 2;
  if (static_cast<int64_t>(cos_.size()) == n * half) return;
  cos_.resize(static_cast<size_t>(n * half));
  sin_.resize(cos_.size());
  rope_tables(rope_.inv_freq.data(), config_.qk_rope_head_dim, 0, n, rope_.magnitude, cos_.data(), sin_.data());
}

template <typename T>
typename TrainModel<T>::Activations TrainModel<T>::forward_stage(const TrainWeights<T>& w, const Stage& stage,
                                                                 const int32_t* tokens, int64_t count, const T* x_in,
                                                                 T* x_out, Losses& losses,
                                                                 std::vector<int64_t>* expert_counts) {
  const ModelConfig& cfg = config_;
  const int64_t d = cfg.hidden_size, V = cfg.vocab_size, n = count;
  const T eps = static_cast<T>(cfg.rms_norm_eps);
  if (n < 2) fail("a training sequence needs at least 2 tokens, got ", n);
  for (int64_t t = 0; t < n; ++t)
    if (tokens[t] < 0 || tokens[t] >= V) fail("token id ", tokens[t], " is outside the vocabulary [0, ", V, ")");
  prepare_positions(n);
  balance_total_ = 0;
  auto state = std::make_shared<StageState>();
  StageState& st = *state;
  st.n = n;
  st.tokens = tokens;

  // Decoder layers; the first stage embeds the tokens.
  Buf<T> x(static_cast<size_t>(n * d)), next(x.size());
  if (stage.first_layer == 0) {
    embedding(w.embed.data, tokens, n, d, x.data());
  } else {
    std::copy_n(x_in, n * d, x.data());
  }
  int64_t moe_index = 0;  // MoE layers before this stage's first
  for (int64_t i = 0; i < stage.first_layer; ++i) moe_index += w.layers[i].is_moe;
  st.caches.resize(static_cast<size_t>(stage.end_layer - stage.first_layer));
  for (int64_t i = stage.first_layer; i < stage.end_layer; ++i) {
    int64_t* counts = nullptr;
    if (expert_counts && w.layers[i].is_moe) counts = expert_counts_of(*expert_counts, moe_index, cfg.n_routed_experts);
    moe_index += w.layers[i].is_moe;
    block_forward(w.layers[i], x.data(), n, st.caches[i - stage.first_layer], next.data(), counts);
    x.swap(next);
  }
  if (!stage.last) {
    std::copy_n(x.data(), n * d, x_out);
    losses.balance += balance_total_;
    return state;
  }

  // Final norm, head and the main loss.
  st.x_last = std::move(x);
  st.hidden.resize(st.x_last.size());
  st.logits.resize(static_cast<size_t>(n * V));
  rmsnorm(st.x_last.data(), d, n, d, w.final_norm.data, eps, st.hidden.data(), d);
  linear(st.hidden.data(), w.head.data, n, d, V, st.logits.data(), pool_);
  st.targets.assign(static_cast<size_t>(n), -1);
  for (int64_t t = 0; t + 1 < n; ++t) st.targets[t] = tokens[t + 1];
  losses.main += cross_entropy(st.logits.data(), st.targets.data(), n, V) / double(n - 1);

  // MTP module on positions 0..n-2: (h_i, tokens[i+1]) -> tokens[i+2].
  const int64_t m = n - 1;
  st.mtp_targets.assign(static_cast<size_t>(m), -1);
  for (int64_t i = 0; i + 2 < n; ++i) st.mtp_targets[i] = tokens[i + 2];
  if (w.mtp) {
    const auto& mw = *w.mtp;
    st.embedded.resize(static_cast<size_t>(m * d));
    st.concat.resize(static_cast<size_t>(m * 2 * d));
    embedding(mw.embed.data, tokens + 1, m, d, st.embedded.data());
    rmsnorm(st.embedded.data(), d, m, d, mw.enorm.data, eps, st.concat.data(), 2 * d);
    rmsnorm(st.hidden.data(), d, m, d, mw.hnorm.data, eps, st.concat.data() + d, 2 * d);
    st.mtp_x.resize(static_cast<size_t>(m * d));
    st.mtp_out.resize(st.mtp_x.size());
    linear(st.concat.data(), mw.eh_proj.data, m, 2 * d, d, st.mtp_x.data(), pool_);
    int64_t* counts = nullptr;  // the MTP block's experts come after the main model's MoE layers
    if (expert_counts) {
      int64_t main_moe_layers = 0;
      for (const auto& layer : w.layers) main_moe_layers += layer.is_moe;
      counts = expert_counts_of(*expert_counts, main_moe_layers, cfg.n_routed_experts);
    }
    block_forward(mw.block, st.mtp_x.data(), m, st.mtp_cache, st.mtp_out.data(), counts);
    st.mtp_hidden.resize(st.mtp_x.size());
    rmsnorm(st.mtp_out.data(), d, m, d, mw.head_norm.data, eps, st.mtp_hidden.data(), d);
    st.mtp_logits.resize(static_cast<size_t>(m * V));
    linear(st.mtp_hidden.data(), mw.head.data, m, d, V, st.mtp_logits.data(), pool_);
    if (m > 1) losses.mtp += cross_entropy(st.mtp_logits.data(), st.mtp_targets.data(), m, V) / double(m - 1);
  }
  losses.balance += balance_total_;
  return state;
}

template <typename T>
void TrainModel<T>::backward_stage(const TrainWeights<T>& w, const Stage& stage, const StageState& st,
                                   double mtp_weight, const T* dx_out, T* dx_in, TrainWeights<T>& g,
                                   DeferredWeightGradients* deferred) {
  if (deferred && expert_comm_ && expert_comm_->distributed())
    fail("the split backward (pipeline parallelism) does not work with expert parallelism");
  deferred_ = deferred;  // read by linear_backward_at; every backward_stage sets it anew
  const ModelConfig& cfg = config_;
  const int64_t d = cfg.hidden_size, V = cfg.vocab_size, n = st.n, m = n - 1;
  const T eps = static_cast<T>(cfg.rms_norm_eps);
  prepare_positions(n);
  Buf<T> dx(static_cast<size_t>(n * d)), dprev(dx.size());
  if (stage.last) {
    Buf<T> dlogits(st.logits.size()), dhidden(st.hidden.size());
    cross_entropy_backward(st.logits.data(), st.targets.data(), n, V, T(1) / T(n - 1), dlogits.data());
    linear_backward_at(GemmPrecision::kF32, st.hidden.data(), w.head.data, dlogits.data(), n, d, V, dhidden.data(),
                       g.head.data);
    if (w.mtp && m > 1 && mtp_weight != 0) {
      const auto& mw = *w.mtp;
      auto& mg = *g.mtp;
      Buf<T> d_logits(st.mtp_logits.size()), d_hidden(st.mtp_hidden.size()), d_out(st.mtp_out.size()),
          d_x(st.mtp_x.size());
      cross_entropy_backward(st.mtp_logits.data(), st.mtp_targets.data(), m, V,
                             static_cast<T>(mtp_weight / double(m - 1)), d_logits.data());
      linear_backward_at(GemmPrecision::kF32, st.mtp_hidden.data(), mw.head.data, d_logits.data(), m, d, V,
                         d_hidden.data(), mg.head.data);
      rmsnorm_backward(st.mtp_out.data(), d_hidden.data(), m, d, mw.head_norm.data, eps, d_out.data(),
                       mg.head_norm.data);
      block_backward(mw.block, st.mtp_cache, m, d_out.data(), d_x.data(), mg.block);
      Buf<T> d_concat(st.concat.size());
      linear_backward_at(GemmPrecision::kF32, st.concat.data(), mw.eh_proj.data, d_x.data(), m, 2 * d, d,
                         d_concat.data(), mg.eh_proj.data);
      Buf<T> half_grad(static_cast<size_t>(m * d)), d_in(half_grad.size());
      for (int64_t i = 0; i < m; ++i) std::copy_n(&d_concat[i * 2 * d], d, &half_grad[i * d]);
      rmsnorm_backward(st.embedded.data(), half_grad.data(), m, d, mw.enorm.data, eps, d_in.data(), mg.enorm.data);
      embedding_backward(st.tokens + 1, d_in.data(), m, d, mg.embed.data);
      for (int64_t i = 0; i < m; ++i) std::copy_n(&d_concat[i * 2 * d + d], d, &half_grad[i * d]);
      rmsnorm_backward(st.hidden.data(), half_grad.data(), m, d, mw.hnorm.data, eps, d_in.data(), mg.hnorm.data);
      add_into(dhidden.data(), d_in.data(), m * d);
    }
    rmsnorm_backward(st.x_last.data(), dhidden.data(), n, d, w.final_norm.data, eps, dx.data(), g.final_norm.data);
  } else {
    std::copy_n(dx_out, n * d, dx.data());
  }
  for (int64_t i = stage.end_layer - 1; i >= stage.first_layer; --i) {
    block_backward(w.layers[i], st.caches[i - stage.first_layer], n, dx.data(), dprev.data(), g.layers[i]);
    dx.swap(dprev);
    if (layer_done_ && !deferred) layer_done_(i);
  }
  if (stage.first_layer == 0) {
    embedding_backward(st.tokens, dx.data(), n, d, g.embed.data);
  } else {
    std::copy_n(dx.data(), n * d, dx_in);
  }
  deferred_ = nullptr;
}

template <typename T>
typename TrainModel<T>::Losses TrainModel<T>::run(const TrainWeights<T>& w, const int32_t* tokens, int64_t count,
                                                  double mtp_weight, TrainWeights<T>* grads,
                                                  std::vector<int64_t>* expert_counts) {
  const Stage whole{0, config_.num_hidden_layers, true};
  Losses losses;
  const Activations state = forward_stage(w, whole, tokens, count, nullptr, nullptr, losses, expert_counts);
  if (grads) backward_stage(w, whole, *state, mtp_weight, nullptr, nullptr, *grads);
  return losses;
}

template class TrainModel<float>;
template class TrainModel<double>;

}  // namespace dsv3
