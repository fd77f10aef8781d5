// Streaming text out token by token without ever splitting a UTF-8 character: bytes of an
// incomplete trailing character are held back until the next token completes it.
#pragma once

#include <string>
#include <string_view>

namespace dsv3 {

class Utf8Stream {
 public:
  // Appends `bytes` and returns what can be shown now (whole characters; invalid bytes
  // that no continuation could complete are passed through as they are).
  std::string push(std::string_view bytes);
  // Whatever is still held back (at the end of generation).
  std::string flush();

 private:
  std::string pending_;
};

}  // namespace dsv3
