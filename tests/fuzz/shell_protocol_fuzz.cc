// libFuzzer target: td::ShellReply on arbitrary bytes (what a broken or
// hostile guest could send back), fed whole and in pieces of every size the
// first byte picks; both ways must agree, and a reply always ends at a newline.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_util.h"
#include "test_driver/shell_protocol.h"

namespace {

struct Parsed {
  bool complete;
  size_t used;
  std::string output;
  int status;
  bool error;
};

Parsed parse(std::string_view data, size_t piece, bool has_status) {
  td::ShellReply reply(has_status);
  size_t used = 0;
  while (used < data.size() && !reply.complete()) used += reply.feed(data.substr(used, piece));
  return {reply.complete(), used, reply.complete() ? reply.take_output() : "", reply.status(),
          reply.error().has_value()};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  size_t piece = data[0] % 16 + 1;
  bool has_status = data[0] & 0x80;
  std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  Parsed whole = parse(input, input.size() + 1, has_status);
  Parsed pieces = parse(input, piece, has_status);
  FUZZ_CHECK(whole.complete == pieces.complete && whole.used == pieces.used && whole.error == pieces.error);
  if (!whole.error) FUZZ_CHECK(whole.output == pieces.output && whole.status == pieces.status);
  if (whole.complete) FUZZ_CHECK(input[whole.used - 1] == '\n');
  else FUZZ_CHECK(input.find('\n') == std::string_view::npos);
  return 0;
}
