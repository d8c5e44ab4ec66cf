// The HTML report of a run (--html-report): one self-contained page (inline
// CSS and JavaScript, screenshots as data: URLs, no network) made of the
// page in src/html_report.html and the run's record (run_record.h) as one
// JSON document the page renders: the verdict and duration, the steps as a
// collapsible tree with durations and bars (failed ones open, with their
// error and traceback), each machine's serial lines (searchable, rendered
// lazily so that a million lines load quickly), screenshots at their steps,
// machine start and stop on a timeline, and the timing profile.
#pragma once

#include <filesystem>
#include <string>

#include "test_driver/run_record.h"

namespace td {

class HtmlReport {
 public:
  // The placeholder in the page that the data replaces.
  static constexpr const char* kDataMarker = "/*@RUN_DATA@*/";

  // The run as the JSON document the page reads (`<` escaped, so it can
  // stand inside a <script> element).
  static std::string data_json(const RunRecord::Data& data, const std::string& title);
  static std::string to_html(const RunRecord::Data& data, const std::string& title);
  // Writes to_html() to `path` through a temporary file and a rename.
  // Throws td::Error.
  static void write(const std::filesystem::path& path, const RunRecord::Data& data, const std::string& title);

  // The page without data (generated from src/html_report.html at build time).
  static const std::string& page();
};

}  // namespace td
