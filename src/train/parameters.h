// Training parameters: every weight of the model in one dense buffer of the compute type
// (FP32 master weights; double in gradient checks), with the model's structure as views into
// it. Gradients use the same layout over a second buffer. The MTP module's embedding and
// head are the main model's (one parameter, one gradient), as the report trains them.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "formats/hf_weights.h"
#include "model/config.h"
#include "model/weights.h"

namespace dsv3 {

template <typename T>
struct DenseMatrix {
  T* data = nullptr;
  int64_t rows = 0, cols = 0;
  bool empty() const { return data == nullptr; }
};

template <typename T>
struct DenseVector {
  T* data = nullptr;
  int64_t size = 0;
  bool empty() const { return data == nullptr; }
};

template <typename T>
using TrainWeights = BasicModelWeights<DenseMatrix<T>, DenseVector<T>>;

template <typename T>
struct ParameterLayout {
  std::vector<WeightSlot> slots;  // every checkpoint tensor, in checkpoint order
  std::vector<size_t> offsets;    // where each lives in the buffer (MTP copies: the main tensor's)
  size_t size = 0;                // floats in the buffer

  explicit ParameterLayout(const ModelConfig& config);
  // The model's structure as views into `buffer` (size floats).
  TrainWeights<T> views(T* buffer) const;
  // [begin, end) of the buffer: decoder layer `layer`'s own parameters (its tensors are
  // consecutive in checkpoint order; the MTP module's shared embedding and head are not its own).
  std::pair<size_t, size_t> layer_range(int64_t layer) const;

 private:
  ModelConfig config_;
};

// Reads every parameter of `layout` from a checkpoint (any stored dtype, decoded to FP32).
// The MTP module's stored copies of the embedding and head are not read: training shares
// the main model's.
void load_parameters(const Checkpoint& checkpoint, const ParameterLayout<float>& layout, float* values);

}  // namespace dsv3
