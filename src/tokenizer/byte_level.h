// The byte-level alphabet of GPT-2-style BPE: every byte 0..255 is shown as one printable
// Unicode character (printable ASCII and Latin-1 map to themselves, the rest to U+0100..),
// so that any byte string is a string of vocabulary symbols.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace dsv3 {

// UTF-8 of the character that stands for each byte.
const std::array<std::string, 256>& byte_level_symbols();

// Maps each byte of `bytes` to its symbol (UTF-8), appending to out.
void bytes_to_byte_level(std::string_view bytes, std::string& out);

// Inverse: appends the bytes of a string of byte-level symbols; false if some character
// is not a byte-level symbol.
bool byte_level_to_bytes(std::string_view symbols, std::string& out);

}  // namespace dsv3
