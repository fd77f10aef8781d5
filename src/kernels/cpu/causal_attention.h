// Causal softmax attention for one head in the plain (non-absorbed) form, as training
// uses it, and its backward. Rows of q, k, v are `stride` apart so that a head can be read
// in place from a [tokens][heads * dim] activation.
//   p[t][s] = softmax_s(q[t] . k[s] * scale)  for s <= t,   o[t] = sum_s p[t][s] v[s]
#pragma once

#include <cstdint>

namespace dsv3 {


// probs: [T][T] (row t holds p[t][0..t], the rest zeroed), kept for the backward.
template <typename T>
void causal_attention_head(const T* q, const T* k, const T* v, int64_t stride_qk, int64_t stride_v, int64_t tokens,
                           int64_t dim_qk, int64_t dim_v, T scale, T* probs, T* out, int64_t stride_out);

// From the forward inputs, probs and d_out: writes dq, dk, dv (same strides as q, k, v).
template <typename T>
void causal_attention_head_backward(const T* q, const T* k, const T* v, int64_t stride_qk, int64_t stride_v,
                                    int64_t tokens, int64_t dim_qk, int64_t dim_v, T scale, const T* probs,
                                    const T* d_out, int64_t stride_out, T* dq, T* dk, T* dv);

}  // namespace dsv3
