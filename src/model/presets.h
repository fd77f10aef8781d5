// Named DeepSeek-V3-architecture configurations for models dsv3 creates itself
// (tests, benchmarks, and the default for training).
#pragma once

#include <string>
#include <vector>

#include "model/config.h"

namespace dsv3 {

// "tiny" (tests, ~1M parameters), "small" (quickstart, ~17M), "0.5b" (benchmarks, ~0.55B).
ModelConfig preset_config(const std::string& name);
std::vector<std::string> preset_names();

}  // namespace dsv3
