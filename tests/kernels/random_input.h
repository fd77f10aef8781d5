// Standard normal test inputs, the same for a given seed.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace dsv3 {

inline std::vector<float> random_input(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n));
  for (auto& v : x) v = normal(rng);
  return x;
}

}  // namespace dsv3
