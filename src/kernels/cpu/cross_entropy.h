// Cross-entropy of logits against target ids, and its backward (the training loss).
#pragma once

#include <cstdint>

namespace dsv3 {

// Returns the SUM over rows of -log softmax(logits[t])[targets[t]]; rows with a negative
// target are skipped (padding / positions without a next token). logits: [rows][vocab].
template <typename T>
double cross_entropy(const T* logits, const int32_t* targets, int64_t rows, int64_t vocab);

// dlogits[t] = scale * (softmax(logits[t]) - onehot(targets[t])); zero for skipped rows.
// With scale = 1 / (number of counted rows) this is the gradient of the mean loss.
template <typename T>
void cross_entropy_backward(const T* logits, const int32_t* targets, int64_t rows, int64_t vocab, T scale, T* dlogits);

}  // namespace dsv3
