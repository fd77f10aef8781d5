#include "formats/json_file.h"

#include <fstream>

#include "base/error.h"

namespace dsv3 {

nlohmann::json read_json_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail("cannot read (", path, ")");
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::parse_error& e) {
    fail("malformed JSON: ", e.what(), " (", path, ")");
  }
}

}  // namespace dsv3
