#include "formats/model_dir.h"

#include <filesystem>

#include "base/error.h"
#include "formats/hf_weights.h"
#include "formats/model_config.h"

namespace dsv3 {

namespace fs = std::filesystem;

LoadedModel load_model(const std::string& path, ThreadPool& pool) {
  LoadedModel loaded;
  if (fs::is_regular_file(path)) {
    loaded.gguf = std::make_unique<GgufModel>(path);
    ModelWeights weights = loaded.gguf->bind_weights();
    loaded.model = std::make_unique<Model>(loaded.gguf->config(), std::move(weights), pool);
    return loaded;
  }
  if (!fs::is_directory(path)) fail("model directory not found (", path, ")");
  ModelConfig config = read_model_config((fs::path(path) / "config.json").string());
  loaded.checkpoint = std::make_unique<Checkpoint>(path);
  ModelWeights weights = bind_weights(*loaded.checkpoint, config);
  loaded.model = std::make_unique<Model>(std::move(config), std::move(weights), pool);
  return loaded;
}

std::string tokenizer_dir(const std::string& model) {
  if (!fs::is_regular_file(model)) return model;
  const fs::path parent = fs::path(model).parent_path();
  return parent.empty() ? "." : parent.string();
}

}  // namespace dsv3
