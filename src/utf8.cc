#include "test_driver/utf8.h"

#include <cstdint>

namespace td {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";

// Length of the valid UTF-8 sequence at s[i], or 0 when it is invalid.
size_t valid_sequence_length(std::string_view s, size_t i) {
  auto byte = [&](size_t k) { return static_cast<uint8_t>(s[k]); };
  auto cont = [&](size_t k) { return k < s.size() && (byte(k) & 0xC0) == 0x80; };
  uint8_t b = byte(i);
  if (b < 0x80) return 1;
  if (b >= 0xC2 && b <= 0xDF) return cont(i + 1) ? 2 : 0;
  if (b >= 0xE0 && b <= 0xEF) {
    if (!cont(i + 1) || !cont(i + 2)) return 0;
    uint8_t b1 = byte(i + 1);
    if (b == 0xE0 && b1 < 0xA0) return 0;  // overlong
    if (b == 0xED && b1 > 0x9F) return 0;  // surrogate
    return 3;
  }
  if (b >= 0xF0 && b <= 0xF4) {
    if (!cont(i + 1) || !cont(i + 2) || !cont(i + 3)) return 0;
    uint8_t b1 = byte(i + 1);
    if (b == 0xF0 && b1 < 0x90) return 0;  // overlong
    if (b == 0xF4 && b1 > 0x8F) return 0;  // above U+10FFFF
    return 4;
  }
  return 0;
}

// How many bytes at s[i] one U+FFFD replaces when they are not valid UTF-8:
// the longest start of a valid sequence there, at least one byte (Python's
// "maximal subpart" rule: a cut-off character is one replacement).
size_t invalid_sequence_length(std::string_view s, size_t i) {
  auto byte = [&](size_t k) { return static_cast<uint8_t>(s[k]); };
  uint8_t b = byte(i);
  size_t needed = b >= 0xC2 && b <= 0xDF ? 2 : b >= 0xE0 && b <= 0xEF ? 3 : b >= 0xF0 && b <= 0xF4 ? 4 : 1;
  size_t n = 1;
  while (n < needed && i + n < s.size()) {
    uint8_t c = byte(i + n);
    uint8_t low = 0x80, high = 0xBF;  // what may follow the lead byte
    if (n == 1 && b == 0xE0) low = 0xA0;
    if (n == 1 && b == 0xED) high = 0x9F;
    if (n == 1 && b == 0xF0) low = 0x90;
    if (n == 1 && b == 0xF4) high = 0x8F;
    if (c < low || c > high) break;
    ++n;
  }
  return n;
}

// `text` with only the characters for which keep(code_point) holds. Runs
// of printable ASCII, which every caller keeps, are copied whole (serial
// floods are mostly that); a byte that is not valid UTF-8 counts as a
// character of its own value.
template <typename Keep>
std::string filter_chars(std::string_view text, Keep keep) {
  std::string out;
  out.reserve(text.size());
  auto printable_ascii = [](char c) { return c >= 0x20 && c < 0x7F; };
  for (size_t i = 0; i < text.size();) {
    size_t run = i;
    while (run < text.size() && printable_ascii(text[run])) ++run;
    out.append(text.substr(i, run - i));
    i = run;
    if (i == text.size()) break;
    size_t n = valid_sequence_length(text, i);
    if (n == 0) n = 1;
    uint32_t cp = static_cast<uint8_t>(text[i]);
    if (n == 2) cp = ((cp & 0x1F) << 6) | (text[i + 1] & 0x3F);
    if (n == 3) cp = ((cp & 0x0F) << 12) | ((text[i + 1] & 0x3F) << 6) | (text[i + 2] & 0x3F);
    if (n == 4)
      cp = ((cp & 0x07) << 18) | ((text[i + 1] & 0x3F) << 12) | ((text[i + 2] & 0x3F) << 6) |
           (text[i + 3] & 0x3F);
    if (keep(cp)) out.append(text.substr(i, n));
    i += n;
  }
  return out;
}

}  // namespace

std::string to_valid_utf8(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  size_t i = 0;
  while (i < bytes.size()) {
    // Copy runs of ASCII quickly; they are the common case.
    size_t start = i;
    while (i < bytes.size() && static_cast<uint8_t>(bytes[i]) < 0x80) ++i;
    out.append(bytes.substr(start, i - start));
    if (i == bytes.size()) break;
    size_t n = valid_sequence_length(bytes, i);
    if (n == 0) {
      out.append(kReplacement);
      i += invalid_sequence_length(bytes, i);
    } else {
      out.append(bytes.substr(i, n));
      i += n;
    }
  }
  return out;
}

std::string strip_xml_forbidden(std::string_view text) {
  return filter_chars(text, [](uint32_t cp) {
    return cp == 0x9 || cp == 0xA || cp == 0xD || (cp >= 0x20 && cp <= 0xD7FF) || (cp >= 0xE000 && cp <= 0xFFFD) ||
           (cp >= 0x10000 && cp <= 0x10FFFF);
  });
}

std::string strip_control(std::string_view text) {
  return filter_chars(text, [](uint32_t cp) { return !(cp < 0x20 || (cp >= 0x7F && cp <= 0x9F)); });
}

}  // namespace td
