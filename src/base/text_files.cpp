#include "base/text_files.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "base/error.h"

namespace dsv3 {

std::vector<std::string> read_text_files(const std::vector<std::string>& paths, const std::string& flag) {
  namespace fs = std::filesystem;
  std::vector<fs::path> files;
  for (const std::string& p : paths) {
    if (fs::is_directory(p)) {
      std::vector<fs::path> found;
      for (const auto& entry : fs::recursive_directory_iterator(p))
        if (entry.is_regular_file()) found.push_back(entry.path());
      std::sort(found.begin(), found.end());
      files.insert(files.end(), found.begin(), found.end());
    } else if (fs::is_regular_file(p)) {
      files.emplace_back(p);
    } else {
      fail("no such file or directory (", flag, " ", p, ")");
    }
  }
  std::vector<std::string> texts;
  for (const fs::path& path : files) {
    std::ifstream in(path, std::ios::binary);
    if (!in) fail("cannot read (", path.string(), ")");
    texts.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  if (texts.empty()) fail("no files to read (", flag, ")");
  return texts;
}

}  // namespace dsv3
