// Streaming text to stdout as it is generated.
#pragma once

#include <cstdio>
#include <string_view>

namespace dsv3::cli {

// Writes text to stdout and flushes, so a reader sees each piece as soon as it exists.
inline void print_now(std::string_view text) {
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
}

}  // namespace dsv3::cli
