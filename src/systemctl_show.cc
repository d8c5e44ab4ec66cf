#include "test_driver/systemctl_show.h"

namespace td {

std::map<std::string, std::string> parse_systemctl_show(std::string_view text) {
  std::map<std::string, std::string> properties;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    size_t eq = line.find('=');
    if (eq == 0 || eq == std::string_view::npos) continue;
    properties[std::string(line.substr(0, eq))] = std::string(line.substr(eq + 1));
  }
  return properties;
}

}  // namespace td
