// Text coming from guests is arbitrary bytes; Python strings and XML are not.
// These functions turn bytes into text that is always safe to hand on.
#pragma once

#include <string>
#include <string_view>

namespace td {

// Returns `bytes` as valid UTF-8: each invalid sequence becomes U+FFFD, as
// Python's bytes.decode(errors="replace") does.
std::string to_valid_utf8(std::string_view bytes);

// Removes the characters that XML 1.0 forbids (control characters other than
// tab, newline and carriage return; U+FFFE, U+FFFF). Input must be valid UTF-8.
std::string strip_xml_forbidden(std::string_view text);

// Removes all control characters (C0 including tab, DEL and C1) and any
// carriage return, as the reference does to serial console lines. Input must
// be valid UTF-8.
std::string strip_control(std::string_view text);

}  // namespace td
