#include "formats/checkpoint.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "formats/json_file.h"

namespace dsv3 {

namespace fs = std::filesystem;
using nlohmann::json;

Checkpoint::Checkpoint(const std::string& dir) : dir_(dir) {
  if (!fs::is_directory(dir)) fail("model directory not found (", dir, ")");
  const fs::path index_path = fs::path(dir) / "model.safetensors.index.json";
  const fs::path single_path = fs::path(dir) / "model.safetensors";

  if (fs::exists(index_path)) {
    json index = read_json_file(index_path.string());
    if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
      fail("index has no weight_map object (", index_path.string(), ")");
    std::map<std::string, SafetensorsFile*> shard_by_file;
    std::vector<std::pair<std::string, std::string>> listed;
    for (const auto& [name, file] : index["weight_map"].items()) {
      if (!file.is_string()) fail("weight_map entry is not a file name (", index_path.string(), ": ", name, ")");
      const std::string shard = file.get<std::string>();
      // Shards must sit in the model directory itself: no paths, no escaping it.
      if (shard.empty() || shard.find('/') != std::string::npos || shard == "." || shard == "..")
        fail("weight_map names an invalid shard file '", shard, "' (", index_path.string(), ": ", name, ")");
      if (!shard_by_file.count(shard)) {
        shards_.push_back(std::make_unique<SafetensorsFile>((fs::path(dir) / shard).string()));
        shard_by_file[shard] = shards_.back().get();
      }
      listed.emplace_back(name, shard);
    }
    for (const auto& [name, shard] : listed) {
      const auto& tensors = shard_by_file[shard]->tensors();
      auto it = tensors.find(name);
      if (it == tensors.end())
        fail("index places tensor in shard ", shard, " but the shard does not hold it (", index_path.string(), ": ", name, ")");
      index_[name] = &it->second;
    }
  } else if (fs::exists(single_path)) {
    shards_.push_back(std::make_unique<SafetensorsFile>(single_path.string()));
    for (const auto& [name, info] : shards_.back()->tensors()) index_[name] = &info;
  } else {
    fail("no model.safetensors or model.safetensors.index.json (", dir, ")");
  }
}

const TensorInfo* Checkpoint::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : it->second;
}

const TensorInfo& Checkpoint::get(const std::string& name) const {
  const TensorInfo* t = find(name);
  if (!t) fail("missing tensor (", dir_, ": ", name, ")");
  return *t;
}

size_t Checkpoint::mapped_bytes() const {
  size_t total = 0;
  for (const auto& s : shards_) total += s->file_size();
  return total;
}

}  // namespace dsv3
