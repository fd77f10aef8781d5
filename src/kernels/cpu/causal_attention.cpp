#include "kernels/cpu/causal_attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace dsv3 {

template <typename T>
void causal_attention_head(const T* q, const T* k, const T* v, int64_t stride_qk, int64_t stride_v, int64_t tokens,
                           int64_t dim_qk, int64_t dim_v, T scale, T* probs, T* out, int64_t stride_out) {
  for (int64_t t = 0; t < tokens; ++t) {
    T* p = probs + t * tokens;
    T max = -INFINITY;
    for (int64_t s = 0; s <= t; ++s) {
      T dot = 0;
      for (int64_t i = 0; i < dim_qk; ++i) dot += q[t * stride_qk + i] * k[s * stride_qk + i];
      p[s] = dot * scale;
      max = std::max(max, p[s]);
    }
    T sum = 0;
    for (int64_t s = 0; s <= t; ++s) sum += p[s] = std::exp(p[s] - max);
    for (int64_t s = 0; s <= t; ++s) p[s] /= sum;
    std::fill(p + t + 1, p + tokens, T(0));
    T* o = out + t * stride_out;
    std::fill(o, o + dim_v, T(0));
    for (int64_t s = 0; s <= t; ++s)
      for (int64_t i = 0; i < dim_v; ++i) o[i] += p[s] * v[s * stride_v + i];
  }
}

template <typename T>
void causal_attention_head_backward(const T* q, const T* k, const T* v, int64_t stride_qk, int64_t stride_v,
                                    int64_t tokens, int64_t dim_qk, int64_t dim_v, T scale, const T* probs,
                                    const T* d_out, int64_t stride_out, T* dq, T* dk, T* dv) {
  for (int64_t t = 0; t < tokens; ++t) {
    std::fill(dq + t * stride_qk, dq + t * stride_qk + dim_qk, T(0));
    std::fill(dk + t * stride_qk, dk + t * stride_qk + dim_qk, T(0));
    std::fill(dv + t * stride_v, dv + t * stride_v + dim_v, T(0));
  }
  std::vector<T> dp(static_cast<size_t>(tokens));
  for (int64_t t = 0; t < tokens; ++t) {
    const T* p = probs + t * tokens;
    const T* dot = d_out + t * stride_out;
    // dv[s] += p[t][s] * do[t];  dp[s] = do[t] . v[s]
    T weighted = 0;  // sum_s p[s] dp[s]
    for (int64_t s = 0; s <= t; ++s) {
      T d = 0;
      for (int64_t i = 0; i < dim_v; ++i) {
        dv[s * stride_v + i] += p[s] * dot[i];
        d += dot[i] * v[s * stride_v + i];
      }
      dp[s] = d;
      weighted += p[s] * d;
    }
    // Softmax backward: ds = p (dp - sum p dp); the scores were q.k * scale.
    for (int64_t s = 0; s <= t; ++s) {
      const T ds = p[s] * (dp[s] - weighted) * scale;
      for (int64_t i = 0; i < dim_qk; ++i) {
        dq[t * stride_qk + i] += ds * k[s * stride_qk + i];
        dk[s * stride_qk + i] += ds * q[t * stride_qk + i];
      }
    }
  }
}

#define DSV3_INSTANTIATE(T)                                                                                       \
  template void causal_attention_head<T>(const T*, const T*, const T*, int64_t, int64_t, int64_t, int64_t, int64_t, \
                                         T, T*, T*, int64_t);                                                    \
  template void causal_attention_head_backward<T>(const T*, const T*, const T*, int64_t, int64_t, int64_t, int64_t, \
                                                  int64_t, T, const T*, const T*, int64_t, T*, T*, T*);
DSV3_INSTANTIATE(float)
DSV3_INSTANTIATE(double)
#undef DSV3_INSTANTIATE

}  // namespace dsv3
