#include "formats/hf_writer.h"

#include <algorithm>
#include <filesystem>

#include "base/atomic_file.h"
#include "formats/model_config.h"
#include "formats/safetensors.h"
#include "tensor/fp8_blocks.h"

namespace dsv3 {

void write_checkpoint(const std::string& dir, ModelConfig config, DType dtype,
                      const std::function<void(const WeightSlot&, float*)>& fill) {
  std::filesystem::create_directories(dir);
  config.fp8_weights = dtype == DType::F8_E4M3;

  // TensorToWrite points into these buffers; moving a vector keeps its buffer in place.
  std::vector<std::vector<uint8_t>> storage;
  std::vector<TensorToWrite> tensors;
  auto add = [&](const std::string& name, DType type, std::vector<int64_t> shape, std::vector<uint8_t> bytes) {
    storage.push_back(std::move(bytes));
    tensors.push_back({name, type, std::move(shape), storage.back().data()});
  };

  const std::vector<WeightSlot> slots = checkpoint_tensors(config);

  std::vector<float> values;
  for (const WeightSlot& slot : slots) {
    const int64_t cols = std::max<int64_t>(slot.cols, 1);
    values.resize(static_cast<size_t>(slot.rows * cols));
    fill(slot, values.data());
    std::vector<int64_t> shape = slot.cols ? std::vector<int64_t>{slot.rows, slot.cols} : std::vector<int64_t>{slot.rows};
    if (slot.role == WeightRole::Bias) {
      add(slot.name, DType::F32, shape, encode_values(values.data(), values.size(), DType::F32));
    } else if (dtype == DType::F8_E4M3 && slot.role == WeightRole::Projection) {
      const int64_t B = kFp8BlockSize;
      std::vector<uint8_t> q(values.size());
      std::vector<float> scales(static_cast<size_t>(((slot.rows + B - 1) / B) * ((slot.cols + B - 1) / B)));
      quantize_fp8_blocks(values.data(), slot.rows, slot.cols, q.data(), scales.data());
      add(slot.name, DType::F8_E4M3, shape, std::move(q));
      add(slot.name + "_scale_inv", DType::F32, {(slot.rows + B - 1) / B, (slot.cols + B - 1) / B},
          encode_values(scales.data(), scales.size(), DType::F32));
    } else {
      const DType stored = dtype == DType::F8_E4M3 ? DType::BF16 : dtype;
      add(slot.name, stored, shape, encode_values(values.data(), values.size(), stored));
    }
  }

  const std::filesystem::path base(dir);
  write_safetensors((base / "model.safetensors").string(), tensors, {{"format", "pt"}});
  const std::string json = model_config_to_json(config);
  AtomicFileWriter config_file((base / "config.json").string());
  config_file.write(json.data(), json.size());
  config_file.commit();
}

}  // namespace dsv3
