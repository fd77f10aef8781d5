// The absorbed-MLA latent cache: per token and layer only the normalised latent c_kv
// (kv_lora_rank floats) and the shared rotary key k_pe (qk_rope_head_dim floats).
#pragma once

#include <cstdint>
#include <vector>

#include "base/error.h"

namespace dsv3 {

class KvCache {
 public:
  KvCache(int64_t layers, int64_t capacity, int64_t row_size)
      : layers_(layers), capacity_(capacity), row_size_(row_size),
        data_(static_cast<size_t>(layers * capacity * row_size)) {}

  int64_t length() const { return length_; }
  int64_t capacity() const { return capacity_; }
  int64_t row_size() const { return row_size_; }
  // Rows [0, capacity) of one layer, row_size floats each.
  float* layer(int64_t i) { return data_.data() + i * capacity_ * row_size_; }

  // Called by the model after a forward pass has written rows [length, length + n) of every layer.
  void advance(int64_t n) { length_ += n; }
  // Forgets everything after the first `length` tokens.
  void truncate(int64_t length) {
    if (length < 0 || length > length_) fail("cannot truncate a cache of ", length_, " tokens to ", length);
    length_ = length;
  }

 private:
  int64_t layers_, capacity_, row_size_;
  int64_t length_ = 0;
  std::vector<float> data_;
};

}  // namespace dsv3
