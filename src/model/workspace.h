// Scratch memory for a forward pass. Buffers only grow, so once the largest batch has
// been seen, further passes (the decode loop) allocate nothing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels/cpu/matmul.h"

namespace dsv3 {

// One expert's share of an MoE pass: its rows in the gathered buffers.
struct ExpertRun {
  int64_t expert;      // routed expert index; -1 for the shared expert
  int64_t first_row;   // its first row of expert_in / expert_out
  int64_t rows;        // its tokens
  int64_t hidden_at;   // where its rows start in gate / up (rows x its width floats)
};

class Buffer {
 public:
  float* get(int64_t n) {
    if (data_.size() < static_cast<size_t>(n)) data_.resize(static_cast<size_t>(n));
    return data_.data();
  }

 private:
  std::vector<float> data_;
};

struct Workspace {
  // the pass's token ids, gathered from its sequences
  std::vector<int32_t> tokens;
  // residual stream, normalised input, sub-layer output
  Buffer x, xn, out;
  // rope tables for the positions of this pass
  Buffer rope_cos, rope_sin;
  // attention
  Buffer q_a, q, kv, q_latent, o_latent, o, attention_scratch;
  // feed-forward: gate/up projections; MoE: router logits, routing, gathered tokens, a shard's routed part
  Buffer gate, up, router, routing_scratch, expert_in, expert_out, routed;
  std::vector<int32_t> expert_ids, token_order;
  std::vector<float> expert_weights;
  std::vector<ExpertRun> expert_runs;
  std::vector<MatmulJob> matmul_jobs;
  // MTP input: the gathered main-model hidden states, concat(enorm(embedding), hnorm(hidden))
  Buffer mtp_hidden, mtp_concat;
  // the rows that get logits, gathered when not all do
  Buffer head_in;
};

}  // namespace dsv3
