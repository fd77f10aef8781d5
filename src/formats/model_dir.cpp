#include "formats/model_dir.h"

#include <filesystem>

#include "base/error.h"
#include "formats/hf_weights.h"
#include "formats/model_config.h"

namespace dsv3 {

LoadedModel load_model(const std::string& dir, ThreadPool& pool) {
  if (!std::filesystem::is_directory(dir)) fail("model directory not found (", dir, ")");
  ModelConfig config = read_model_config((std::filesystem::path(dir) / "config.json").string());
  LoadedModel loaded;
  loaded.checkpoint = std::make_unique<Checkpoint>(dir);
  ModelWeights weights = bind_weights(*loaded.checkpoint, config);
  loaded.model = std::make_unique<Model>(std::move(config), std::move(weights), pool);
  return loaded;
}

}  // namespace dsv3
