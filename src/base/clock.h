// Wall-clock timing for progress lines, benchmarks and timeouts.
#pragma once

#include <chrono>

namespace dsv3 {

using Clock = std::chrono::steady_clock;

// Seconds from start until now.
inline double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace dsv3
