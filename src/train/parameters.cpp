#include "train/parameters.h"

#include <algorithm>
#include <map>
#include <string>

#include "base/error.h"
#include "tensor/matrix.h"

namespace dsv3 {

namespace {

// Walks the tensors in checkpoint order; calls place(slot, matrix, vector, offset).
template <typename T, typename Place>
void walk(const ModelConfig& config, TrainWeights<T>& weights, Place&& place) {
  std::map<std::string, size_t> offset_of;
  size_t next = 0;
  for_each_weight<TrainWeights<T>>(
      config, weights, [&](const WeightSlot& slot, DenseMatrix<T>* m, DenseVector<T>* v) {
        size_t offset = next;
        if (slot.mtp_copy_of_main) {
          const bool is_embed = slot.name.ends_with("embed_tokens.weight");
          offset = offset_of.at(is_embed || config.tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight");
        } else {
          offset_of[slot.name] = offset;
          next += static_cast<size_t>(slot.rows * std::max<int64_t>(slot.cols, 1));
        }
        place(slot, m, v, offset, next);
      });
}

}  // namespace

template <typename T>
ParameterLayout<T>::ParameterLayout(const ModelConfig& config) : config_(config) {
  TrainWeights<T> unused;
  walk<T>(config, unused, [&](const WeightSlot& slot, DenseMatrix<T>*, DenseVector<T>*, size_t offset, size_t end) {
    slots.push_back(slot);
    offsets.push_back(offset);
    size = end;
  });
}

template <typename T>
TrainWeights<T> ParameterLayout<T>::views(T* buffer) const {
  TrainWeights<T> w;
  walk<T>(config_, w, [&](const WeightSlot& slot, DenseMatrix<T>* m, DenseVector<T>* v, size_t offset, size_t) {
    if (m) *m = DenseMatrix<T>{buffer + offset, slot.rows, slot.cols};
    if (v) *v = DenseVector<T>{buffer + offset, slot.rows};
  });
  if (config_.tie_word_embeddings) w.head = w.embed;
  return w;
}

template <typename T>
std::pair<size_t, size_t> ParameterLayout<T>::layer_range(int64_t layer) const {
  const std::string prefix = "model.layers." + std::to_string(layer) + ".";
  size_t begin = size, end = 0, own = 0;
  for (size_t i = 0; i < slots.size(); ++i) {
    if (!slots[i].name.starts_with(prefix) || slots[i].mtp_copy_of_main) continue;
    const size_t count = static_cast<size_t>(slots[i].rows * std::max<int64_t>(slots[i].cols, 1));
    begin = std::min(begin, offsets[i]);
    end = std::max(end, offsets[i] + count);
    own += count;
  }
  if (end == 0 || end - begin != own) fail("no consecutive parameters for decoder layer ", layer);
  return {begin, end};
}

void load_parameters(const Checkpoint& checkpoint, const ParameterLayout<float>& layout, float* values) {
  for (size_t i = 0; i < layout.slots.size(); ++i) {
    const WeightSlot& s = layout.slots[i];
    if (s.mtp_copy_of_main) continue;
    const TensorInfo& t = checkpoint.get(s.name);
    const int64_t cols = std::max<int64_t>(s.cols, 1);
    if (t.dtype == DType::F8_E4M3) fail("training from FP8 weights is not supported yet (", *t.file, ": ", s.name, ")");
    if (t.numel() != s.rows * cols) fail("tensor size does not match the config (", *t.file, ": ", s.name, ")");
    const Matrix view{t.dtype, s.rows, cols, t.data, nullptr, 0};
    for (int64_t r = 0; r < s.rows; ++r) view.decode_row(r, 0, cols, values + layout.offsets[i] + r * cols);
  }
}

template struct ParameterLayout<float>;
template struct ParameterLayout<double>;

}  // namespace dsv3
