#include "test_driver/html_report.h"

#include <gtest/gtest.h>

#include "test_driver/json.h"

namespace {

td::RunRecord::Data sample() {
  td::RunRecord record;
  record.set_keep_text(true);
  record.set_outcome("failed", "test script failed");
  record.begin_step("sub </script><!-- test", "", td::StepKind::subtest, 2);
  record.add_serial("m", {"</script>", std::string("bad \xff utf-8"), "\xe2\x80\xa8 separator"});
  record.add_screenshot("m", "shot.png", std::string("\x89PNG\r\n\x1a\n", 8));
  record.add_problem({false, "AssertionError", "a < b & c", "Traceback\n"});
  record.end_step(true);
  return record.snapshot();
}

}  // namespace

TEST(HtmlReport, DataIsJsonThatCannotEndItsScriptElement) {
  std::string json = td::HtmlReport::data_json(sample(), "title");
  EXPECT_EQ(json.find('<'), std::string::npos);
  EXPECT_EQ(json.find('>'), std::string::npos);
  EXPECT_EQ(json.find("\xe2\x80\xa8"), std::string::npos);
  td::Json doc = td::Json::parse(json);
  EXPECT_EQ(doc.string_at("outcome"), "failed");
  const auto& steps = doc.find("steps")->as_array();
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_EQ(steps[0].as_array()[2].as_string(), "sub </script><!-- test");
  EXPECT_EQ(steps[0].as_array()[7].as_number(), 1);  // failed
  const auto& serial = doc.find("serial")->find("m")->find("s")->as_array();
  EXPECT_EQ(serial[0].as_string(), "</script>");
  EXPECT_EQ(serial[1].as_string(), "bad \xef\xbf\xbd utf-8");  // U+FFFD
  const auto& shots = doc.find("screenshots")->as_array();
  ASSERT_EQ(shots.size(), 1u);
  EXPECT_EQ(shots[0].string_at("png"), "iVBORw0KGgo=");
}

TEST(HtmlReport, ThePageHoldsTheDataOnceAndNoMarker) {
  std::string html = td::HtmlReport::to_html(sample(), "title");
  EXPECT_EQ(html.find(td::HtmlReport::kDataMarker), std::string::npos);
  EXPECT_NE(html.find("<!DOCTYPE html>"), std::string::npos);
  EXPECT_NE(html.find("\"outcome\":\"failed\""), std::string::npos);
  EXPECT_EQ(html.find("</script><!--"), std::string::npos);
  EXPECT_NE(td::HtmlReport::page().find(td::HtmlReport::kDataMarker), std::string::npos);
}
