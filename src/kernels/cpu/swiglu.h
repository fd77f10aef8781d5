// The SwiGLU activation h = silu(gate) * up, silu(g) = g * sigmoid(g), and its backward.
#pragma once

#include <cstdint>

namespace dsv3 {

// gate and up hold n values each; writes n values to out (which may alias gate).
template <typename T>
void swiglu(const T* gate, const T* up, int64_t n, T* out);

// From the forward inputs and dh: dgate = dh * up * silu'(gate), dup = dh * silu(gate),
// silu'(g) = s (1 + g (1 - s)) with s = sigmoid(g).
template <typename T>
void swiglu_backward(const T* gate, const T* up, const T* dh, int64_t n, T* dgate, T* dup);

}  // namespace dsv3
