// Base64 decoding of the shell protocol's output frames.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace td {

// Decodes standard base64 (RFC 4648, with padding); whitespace is ignored.
// Returns nullopt when the input is not base64.
std::optional<std::string> base64_decode(std::string_view text);

std::string base64_encode(std::string_view bytes);

}  // namespace td
