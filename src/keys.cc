#include "test_driver/keys.h"

namespace td {

const std::map<std::string, std::string>& char_to_key() {
  static const std::map<std::string, std::string> table = [] {
    std::map<std::string, std::string> t;
    for (char c = 'A'; c <= 'Z'; ++c) t[std::string(1, c)] = std::string("shift-") + static_cast<char>(c - 'A' + 'a');
    const std::pair<const char*, const char*> symbols[] = {
        {"-", "0x0C"},       {"_", "shift-0x0C"}, {"=", "0x0D"},       {"+", "shift-0x0D"}, {"[", "0x1A"},
        {"{", "shift-0x1A"}, {"]", "0x1B"},       {"}", "shift-0x1B"}, {";", "0x27"},       {":", "shift-0x27"},
        {"'", "0x28"},       {"\"", "shift-0x28"}, {"`", "0x29"},      {"~", "shift-0x29"}, {"\\", "0x2B"},
        {"|", "shift-0x2B"}, {",", "0x33"},       {"<", "shift-0x33"}, {".", "0x34"},       {">", "shift-0x34"},
        {"/", "0x35"},       {"?", "shift-0x35"}, {" ", "spc"},        {"\n", "ret"},       {"!", "shift-0x02"},
        {"@", "shift-0x03"}, {"#", "shift-0x04"}, {"$", "shift-0x05"}, {"%", "shift-0x06"}, {"^", "shift-0x07"},
        {"&", "shift-0x08"}, {"*", "shift-0x09"}, {"(", "shift-0x0A"}, {")", "shift-0x0B"},
    };
    for (const auto& [c, k] : symbols) t[c] = k;
    return t;
  }();
  return table;
}

std::string key_name(const std::string& key) {
  auto it = char_to_key().find(key);
  return it == char_to_key().end() ? key : it->second;
}

}  // namespace td
