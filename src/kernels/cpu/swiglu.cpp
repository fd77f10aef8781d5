#include "kernels/cpu/swiglu.h"

#include <cmath>

namespace dsv3 {

template <typename T>
void swiglu(const T* gate, const T* up, int64_t n, T* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = gate[i] / (T(1) + std::exp(-gate[i])) * up[i];
}

template <typename T>
void swiglu_backward(const T* gate, const T* up, const T* dh, int64_t n, T* dgate, T* dup) {
  for (int64_t i = 0; i < n; ++i) {
    const T s = T(1) / (T(1) + std::exp(-gate[i]));
    dgate[i] = dh[i] * up[i] * s * (T(1) + gate[i] * (T(1) - s));
    dup[i] = dh[i] * gate[i] * s;
  }
}

template void swiglu<float>(const float*, const float*, int64_t, float*);
template void swiglu<double>(const double*, const double*, int64_t, double*);
template void swiglu_backward<float>(const float*, const float*, const float*, int64_t, float*, float*);
template void swiglu_backward<double>(const double*, const double*, const double*, int64_t, double*, double*);

}  // namespace dsv3
