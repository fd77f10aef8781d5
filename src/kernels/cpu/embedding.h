// Token embedding lookup with dense weights of the compute type, and its backward.
#pragma once

#include <cstdint>

namespace dsv3 {

// out[t] = table[ids[t]] for rows of `dim` values. Ids must be in range (checked by callers).
template <typename T>
void embedding(const T* table, const int32_t* ids, int64_t count, int64_t dim, T* out);

// dtable[ids[t]] += dout[t] (repeated ids accumulate).
template <typename T>
void embedding_backward(const int32_t* ids, const T* dout, int64_t count, int64_t dim, T* dtable);

}  // namespace dsv3
