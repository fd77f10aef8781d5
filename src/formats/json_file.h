// Reading a JSON file with errors that name the file (config.json, index files, tokenizer files).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace dsv3 {

nlohmann::json read_json_file(const std::string& path);

}  // namespace dsv3
