// Opens a model for inference: a Hugging Face model directory (config.json and the mapped
// safetensors) or a GGUF file of llama.cpp's deepseek2 architecture, and a Model over it.
#pragma once

#include <memory>
#include <string>

#include "base/thread_pool.h"
#include "formats/checkpoint.h"
#include "formats/gguf_model.h"
#include "model/model.h"

namespace dsv3 {

struct LoadedModel {
  // Whichever of the two owns the mapped files the model's weights point into.
  std::unique_ptr<Checkpoint> checkpoint;
  std::unique_ptr<GgufModel> gguf;
  std::unique_ptr<Model> model;
};

// `path` is a model directory, or a file (read as GGUF).
LoadedModel load_model(const std::string& path, ThreadPool& pool);

// Where the tokenizer files of a model are: the directory itself, or the one holding a
// GGUF file (dsv3 reads tokenizer.json and tokenizer_config.json, not GGUF's tokenizer).
std::string tokenizer_dir(const std::string& model);

}  // namespace dsv3
