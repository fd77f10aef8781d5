#include "formats/hf_weights.h"

#include <sstream>

#include "base/error.h"

namespace dsv3 {

namespace {

std::string shape_string(const std::vector<int64_t>& shape) {
  std::ostringstream s;
  s << "[";
  for (size_t i = 0; i < shape.size(); ++i) s << (i ? ", " : "") << shape[i];
  s << "]";
  return s.str();
}

const TensorInfo& checked_tensor(const Checkpoint& ckpt, const std::string& name, const std::vector<int64_t>& shape) {
  const TensorInfo& t = ckpt.get(name);
  if (t.shape != shape)
    fail("tensor shape ", shape_string(t.shape), " does not match the config's ", shape_string(shape), " (", *t.file,
         ": ", name, ")");
  return t;
}

}  // namespace

Matrix bind_matrix(const Checkpoint& ckpt, const std::string& name, int64_t rows, int64_t cols) {
  const TensorInfo& t = checked_tensor(ckpt, name, {rows, cols});
  Matrix m{t.dtype, rows, cols, t.data, nullptr, 0};
  if (t.dtype != DType::F8_E4M3) return m;
  const std::string scale_name = name + "_scale_inv";
  const TensorInfo* s = ckpt.find(scale_name);
  if (!s) fail("FP8 tensor has no ", scale_name, " block scales (", *t.file, ": ", name, ")");
  if (s->dtype != DType::F32)
    fail("block scales must be F32, got ", dtype_name(s->dtype), " (", *s->file, ": ", scale_name, ")");
  const std::vector<int64_t> scale_shape = {(rows + kFp8BlockSize - 1) / kFp8BlockSize,
                                            (cols + kFp8BlockSize - 1) / kFp8BlockSize};
  if (s->shape != scale_shape)
    fail("block scale shape ", shape_string(s->shape), " does not match ", shape_string(scale_shape), " for a ", rows,
         "x", cols, " weight (", *s->file, ": ", scale_name, ")");
  m.scale_inv = reinterpret_cast<const float*>(s->data);
  m.nan_scan = t.nan_scan.get();
  return m;
}

std::vector<float> bind_vector(const Checkpoint& ckpt, const std::string& name, int64_t n) {
  const TensorInfo& t = checked_tensor(ckpt, name, {n});
  if (t.dtype == DType::F8_E4M3) fail("1-D tensor cannot be FP8 (", *t.file, ": ", name, ")");
  return decode_to_f32(Matrix{t.dtype, 1, n, t.data, nullptr, 0});
}

std::vector<WeightSlot> checkpoint_tensors(const ModelConfig& config) {
  ModelWeights unused;
  std::vector<WeightSlot> slots;
  for_each_weight<ModelWeights>(config, unused,
                                [&](const WeightSlot& slot, Matrix*, std::vector<float>*) { slots.push_back(slot); });
  return slots;
}

ModelWeights bind_weights(const Checkpoint& checkpoint, const ModelConfig& config) {
  ModelWeights w;
  for_each_weight<ModelWeights>(config, w, [&](const WeightSlot& slot, Matrix* matrix, std::vector<float>* vector) {
    if (matrix) {
      *matrix = bind_matrix(checkpoint, slot.name, slot.rows, slot.cols);
    } else {
      *vector = bind_vector(checkpoint, slot.name, slot.rows);
    }
  });
  if (config.tie_word_embeddings) w.head = w.embed;
  return w;
}

}  // namespace dsv3
