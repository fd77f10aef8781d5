// The SwiGLU activation: h = silu(gate) * up, silu(g) = g / (1 + exp(-g)).
#pragma once

#include <cstdint>

namespace dsv3 {

// gate and up hold n floats each; writes n floats to out (which may alias gate).
void swiglu(const float* gate, const float* up, int64_t n, float* out);

}  // namespace dsv3
