// The characters send_chars can type, as QEMU `sendkey` names (the
// reference's CHAR_TO_KEY): upper case and symbols need shift; everything
// else is sent by its own name.
#pragma once

#include <map>
#include <string>

namespace td {

const std::map<std::string, std::string>& char_to_key();

// The sendkey name for `key`: the table's entry, or `key` itself.
std::string key_name(const std::string& key);

}  // namespace td
