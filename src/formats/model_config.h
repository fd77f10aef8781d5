// config.json of a Hugging Face DeepSeek-V2/V3 model directory -> ModelConfig.
#pragma once

#include <string>

#include "model/config.h"

namespace dsv3 {

// Parses and validates; errors name the field and the file.
ModelConfig read_model_config(const std::string& config_json_path);

// The config.json text for a ModelConfig (written with checkpoints).
std::string model_config_to_json(const ModelConfig& config);

}  // namespace dsv3
