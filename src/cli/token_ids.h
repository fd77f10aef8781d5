// Token ids given on the command line or in a file: integers separated by spaces or commas.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dsv3::cli {

// Errors name `flag`; an empty list is an error when `required`.
std::vector<int32_t> parse_token_ids(const std::string& text, const std::string& flag, bool required);

}  // namespace dsv3::cli
