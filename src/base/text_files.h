// Reading the text files a command is pointed at (training data).
#pragma once

#include <string>
#include <vector>

namespace dsv3 {

// The contents of every regular file under `paths`: files as given, directories
// recursively in sorted order. Errors name the path and `flag`.
std::vector<std::string> read_text_files(const std::vector<std::string>& paths, const std::string& flag);

}  // namespace dsv3
