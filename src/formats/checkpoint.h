// The weights of a Hugging Face model directory: model.safetensors, or shards listed in
// model.safetensors.index.json. Tensors are looked up by name across all shards.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "formats/safetensors.h"

namespace dsv3 {

class Checkpoint {
 public:
  // Opens and validates every shard of the model directory `dir`.
  explicit Checkpoint(const std::string& dir);

  const std::string& dir() const { return dir_; }
  const TensorInfo* find(const std::string& name) const;
  // Like find, but a missing tensor is an error naming it and the directory.
  const TensorInfo& get(const std::string& name) const;
  // Total bytes of the mapped files.
  size_t mapped_bytes() const;

 private:
  std::string dir_;
  std::vector<std::unique_ptr<SafetensorsFile>> shards_;
  std::map<std::string, const TensorInfo*> index_;
};

}  // namespace dsv3
