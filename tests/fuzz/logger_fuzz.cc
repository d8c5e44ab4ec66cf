// libFuzzer target: the XML log with arbitrary text in messages, attribute
// values, nest heads and serial lines must stay well-formed (reparsed with
// tinyxml2) and keep the text it can keep.
#include <fcntl.h>
#include <tinyxml2.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_util.h"
#include "test_driver/logger.h"
#include "test_driver/utf8.h"

namespace {
std::string log_path;
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  log_path = "/tmp/td-logger-fuzz-" + std::to_string(::getpid()) + ".xml";
  // The logger also prints every message on stderr: keep the fuzzer's quiet.
  int null = ::open("/dev/null", O_WRONLY);
  ::dup2(null, STDERR_FILENO);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string input(reinterpret_cast<const char*>(data), size);
  // The first byte picks the structure, the rest is text.
  unsigned shape = input.empty() ? 0 : static_cast<uint8_t>(input[0]);
  std::string text = input.empty() ? input : input.substr(1);
  std::string valid = td::to_valid_utf8(text);  // what callers pass: valid UTF-8
  {
    td::Logger logger;
    logger.open(log_path);
    logger.log(valid, {{"machine", valid}, {"k", valid}});
    if (shape & 1) logger.begin_nest(valid, {{"machine", valid}});
    if (shape & 2) logger.log_serial(valid, valid);
    if (shape & 4) logger.begin_nest("inner");
    logger.error(valid);
    if (shape & 8) logger.end_nest();
    logger.close();  // closes open nests
  }
  tinyxml2::XMLDocument doc;
  FUZZ_CHECK(doc.LoadFile(log_path.c_str()) == tinyxml2::XML_SUCCESS);
  const auto* root = doc.RootElement();
  FUZZ_CHECK(root && std::string(root->Name()) == "logfile");
  const auto* line = root->FirstChildElement("line");
  FUZZ_CHECK(line);
  // Text without forbidden characters comes back unchanged (tinyxml2
  // normalises CR LF, and whitespace-only text may be collapsed: skip those).
  std::string kept = td::strip_xml_forbidden(valid);
  if (kept.find('\r') == std::string::npos && kept.find_first_not_of(" \t\n") != std::string::npos &&
      kept.front() != ' ' && kept.front() != '\n' && kept.front() != '\t' && kept.back() != ' ' &&
      kept.back() != '\n' && kept.back() != '\t') {
    const char* got = line->GetText();
    FUZZ_CHECK(got && kept == got);
    const char* attr = line->Attribute("k");
    FUZZ_CHECK(attr && kept == attr);
  }
  return 0;
}
