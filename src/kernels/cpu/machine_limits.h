// This machine's limits, measured: the rate at which all threads together read memory
// (a buffer far larger than the caches) and their FP32 fused-multiply-add peak. Decoding
// cannot beat bandwidth / bytes per token, prefill cannot beat peak / FLOPs per token.
#pragma once

#include "base/thread_pool.h"

namespace dsv3 {

struct MachineLimits {
  double read_bytes_per_second = 0;
  double fma_flops_per_second = 0;  // 2 FLOPs per lane per FMA
};

// About two seconds: the best of 3 passes over 1 GiB and of 2 runs of 10^8 FMA rounds per thread.
MachineLimits measure_machine_limits(ThreadPool& pool);

}  // namespace dsv3
