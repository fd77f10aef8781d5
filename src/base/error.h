// One error type for everything a user can get wrong (files, fields, tensors, flags).
// The CLI prints what() as the single line `dsv3: error: <what>`, so messages name
// the thing at fault, e.g. "tensor shape [4, 8] does not match config (model.safetensors: lm_head.weight)".
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace dsv3 {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Builds a message from any streamable parts: fail("bad ", name, " at ", offset).
template <typename... Parts>
[[noreturn]] void fail(const Parts&... parts) {
  std::ostringstream message;
  (message << ... << parts);
  throw Error(message.str());
}

}  // namespace dsv3
