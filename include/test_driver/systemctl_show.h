// Parsing `systemctl show` output (Key=Value lines) into properties.
#pragma once

#include <map>
#include <string>
#include <string_view>

namespace td {

// Each line "Key=Value" (the value may be empty or contain '='); other
// lines are ignored.
std::map<std::string, std::string> parse_systemctl_show(std::string_view text);

}  // namespace td
