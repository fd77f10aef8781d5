#include "infer/utf8_stream.h"

namespace dsv3 {

namespace {

// Length of the sequence a lead byte starts, or 0 for a continuation/invalid byte.
int sequence_length(unsigned char b) {
  if (b < 0x80) return 1;
  if ((b & 0xe0) == 0xc0) return 2;
  if ((b & 0xf0) == 0xe0) return 3;
  if ((b & 0xf8) == 0xf0) return 4;
  return 0;
}

}  // namespace

std::string Utf8Stream::push(std::string_view bytes) {
  pending_ += bytes;
  // Find the last lead byte among the final 3 bytes; hold it back if its sequence is short.
  size_t keep_from = pending_.size();
  for (size_t back = 1; back <= 3 && back <= pending_.size(); ++back) {
    const auto b = static_cast<unsigned char>(pending_[pending_.size() - back]);
    if ((b & 0xc0) == 0x80) continue;  // a continuation byte: look further back
    const int length = sequence_length(b);
    if (length > static_cast<int>(back)) keep_from = pending_.size() - back;
    break;
  }
  std::string ready = pending_.substr(0, keep_from);
  pending_.erase(0, keep_from);
  return ready;
}

std::string Utf8Stream::flush() {
  std::string rest;
  rest.swap(pending_);
  return rest;
}

}  // namespace dsv3
