// Linear layers with dense weights of the compute type (training's FP32 master weights,
// or double in gradient checks): y = x W^T, and the backward pair
//   dx = dy W          (input gradient)
//   dW += dy^T x       (weight gradient, accumulated)
// W is [out][in] like a PyTorch Linear; x is [rows][in], y and dy are [rows][out].
#pragma once

#include <cstdint>

#include "base/thread_pool.h"

namespace dsv3 {

template <typename T>
void linear(const T* x, const T* W, int64_t rows, int64_t in, int64_t out, T* y, ThreadPool& pool);

// dx is overwritten (skipped if null); dW is accumulated into (skipped if null).
template <typename T>
void linear_backward(const T* x, const T* W, const T* dy, int64_t rows, int64_t in, int64_t out, T* dx, T* dW,
                     ThreadPool& pool);

}  // namespace dsv3
