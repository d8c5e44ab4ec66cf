// Base64 decoding of the shell protocol's output frames.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace td {

// Decodes standard base64 (RFC 4648, with padding); whitespace is ignored.
// Returns nullopt when the input is not base64.
std::optional<std::string> base64_decode(std::string_view text);

std::string base64_encode(std::string_view bytes);

// base64_decode for text that arrives in pieces: feed() appends what it can
// decode to `out`, and finish() says whether the whole was valid base64.
class Base64Decoder {
 public:
  // False when `text` holds something that is not base64.
  bool feed(std::string_view text, std::string& out);
  // False when the symbols fed do not end a base64 text (a cut-off quantum).
  bool finish() const { return ok_ && symbols_ % 4 == 0 && padding_ <= 2; }

 private:
  uint32_t acc_ = 0;
  int bits_ = 0;
  size_t padding_ = 0;
  size_t symbols_ = 0;
  bool ok_ = true;
};

}  // namespace td
