// The DeepSeek-V3 forward pass (architecture.md): embedding, decoder blocks of MLA
// attention and dense SwiGLU / DeepSeekMoE feed-forward, final norm and head, and the
// MTP module. Activations and accumulation are FP32; weights stay in their stored dtype.
//
// Attention always runs in the absorbed form over the latent cache, for prefill and
// decoding alike, so that both give the same numbers.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <span>

#include "base/thread_pool.h"
#include "kernels/cpu/matmul.h"
#include "model/config.h"
#include "model/kv_cache.h"
#include "model/rope.h"
#include "model/weights.h"
#include "model/workspace.h"

namespace dsv3 {

// One sequence's share of a batched pass: `count` tokens at positions cache->length()..
struct SequenceSlice {
  const int32_t* tokens;
  int64_t count;
  KvCache* cache;
  int64_t logit_rows = -1;        // logits for the last logit_rows tokens; -1: all of them
  const float* hidden = nullptr;  // MTP module only: [count][d] main-model hidden states
};

class Model {
 public:
  Model(ModelConfig config, ModelWeights weights, ThreadPool& pool);

  const ModelConfig& config() const { return config_; }
  const ModelWeights& weights() const { return weights_; }
  bool has_mtp() const { return weights_.mtp.has_value(); }

  KvCache make_cache(int64_t capacity) const;
  KvCache make_mtp_cache(int64_t capacity) const;

  // Runs T tokens at positions cache.length().. and appends them to the cache.
  // hidden (optional): [T][d] final hidden states after the final norm, what the MTP
  // module takes; logits (optional): [T][vocab], or only the last `logit_rows` rows when
  // logit_rows >= 0 (a prefill needs only the last). A token's results are bitwise the
  // same whatever T is (prefill, decoding and speculative verification agree exactly).
  void forward(const int32_t* tokens, int64_t T, KvCache& cache, float* hidden, float* logits,
               int64_t logit_rows = -1);

  // Several sequences in one pass, each with its own cache: the weights are read once for
  // all of them (batched decoding). Rows of hidden are the slices' tokens in order; rows of
  // logits are each slice's last logit_rows tokens in order. Every token's results are
  // bitwise those of running its sequence alone.
  void forward(std::span<const SequenceSlice> slices, float* hidden, float* logits);

  // The MTP module on T positions: row i combines the main model's hidden state hidden[i]
  // with the embedding of next_tokens[i] (the token after it) and predicts the token after
  // that. Positions continue mtp_cache.length()..; logits as in forward. hidden_out
  // (optional): [T][d] the module's own hidden states after its head norm, which stand in
  // for the main model's when drafting more than one token ahead.
  void forward_mtp(const int32_t* next_tokens, const float* hidden, int64_t T, KvCache& mtp_cache, float* logits,
                   int64_t logit_rows = -1, float* hidden_out = nullptr);

  // The MTP module over several sequences (slice.tokens are the next tokens, slice.hidden
  // the main model's hidden states, slice.cache the MTP caches); outputs as in forward.
  void forward_mtp(std::span<const SequenceSlice> slices, float* logits, float* hidden_out = nullptr);

  // Expert parallelism: this model evaluates only the routed experts [first, first + count)
  // and `sum_over_shards` adds up, in place, the partial routed outputs of all shards (every
  // shard runs the same tokens). The other experts' weights are never read, so their pages
  // of a mapped checkpoint are never loaded. Sums run in another order than one model's.
  void shard_experts(int64_t first, int64_t count, std::function<void(float*, int64_t)> sum_over_shards);

  // Opt-in lower precision: the activations entering the weight products (projections,
  // experts, heads; not the router, which keeps FP32 as the report's gating does) rounded to
  // BF16 (kernels/cpu/matmul.h, MatmulInput). The default, kF32, computes the reference's numbers.
  void set_matmul_input(MatmulInput input) { input_ = input; }

 private:
  // Checks the slices and gathers their tokens; returns the total token count.
  int64_t begin_pass(std::span<const SequenceSlice> slices);
  void position_tables(std::span<const SequenceSlice> slices);
  void head(const Matrix& head, std::span<const SequenceSlice> slices, const float* normed, float* logits);
  void embed(const Matrix& table, const int32_t* tokens, int64_t T, float* out) const;
  void decoder_block(const LayerWeights& layer, float* x, int64_t T, std::span<const SequenceSlice> slices,
                     int64_t cache_layer);
  void attention(const AttentionWeights& w, const float* xn, int64_t T, std::span<const SequenceSlice> slices,
                 int64_t cache_layer, float* out);
  void feed_forward(const LayerWeights& layer, const float* xn, int64_t T, float* out);
  void swiglu_ffn(const SwiGluWeights& w, const float* x, int64_t T, float* out);
  void moe(const MoeWeights& w, const float* xn, int64_t T, float* out);

  // body(begin, end) over ranges of [0, n), items of item_values floats each (token rows,
  // activations), on the pool when a range holds enough work to pay for waking it: a prefill's
  // norms, residual adds, SwiGLU and expert gathers, run on one thread, took 7 % of it.
  // Passes of a few tokens stay on this thread. Every item is computed as it would be alone.
  template <class Body>
  void in_parallel(int64_t n, int64_t item_values, const Body& body) {
    constexpr int64_t kValuesPerTask = 16384;
    pool_.parallel_ranges(n, std::max<int64_t>(1, kValuesPerTask / item_values), 2, body);
  }
  // out = RMSNorm(x) for T contiguous rows as long as weight (out may be x), in_parallel.
  void norm_rows(const float* x, int64_t T, const std::vector<float>& weight, float* out);
  // gate = SwiGLU(gate, up) over n values, in_parallel.
  void swiglu_in_place(float* gate, const float* up, int64_t n);

  ModelConfig config_;
  ModelWeights weights_;
  ThreadPool& pool_;
  int64_t first_expert_ = 0, expert_count_ = 0;  // expert_count_ 0: all experts, no sharding
  MatmulInput input_ = MatmulInput::kF32;
  std::function<void(float*, int64_t)> sum_over_shards_;
  RopeParams rope_;
  Workspace ws_;
};

}  // namespace dsv3
