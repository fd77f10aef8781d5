// Opens a Hugging Face model directory: config.json, the mapped weights, and a Model over them.
#pragma once

#include <memory>
#include <string>

#include "base/thread_pool.h"
#include "formats/checkpoint.h"
#include "model/model.h"

namespace dsv3 {

struct LoadedModel {
  std::unique_ptr<Checkpoint> checkpoint;  // owns the mapped files the model's weights point into
  std::unique_ptr<Model> model;
};

LoadedModel load_model(const std::string& dir, ThreadPool& pool);

}  // namespace dsv3
