#include "test_driver/json.h"

#include <gtest/gtest.h>

#include "test_driver/errors.h"

TEST(Json, ParsesQmpMessages) {
  auto greeting = td::Json::parse(R"({"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}}, "capabilities": ["oob"]}})");
  ASSERT_TRUE(greeting.find("QMP"));
  EXPECT_EQ(greeting.find("QMP")->find("version")->find("qemu")->find("minor")->as_number(), 2);
  auto event = td::Json::parse("{\"timestamp\": {\"seconds\": 1700000000, \"microseconds\": 5}, \"event\": \"SHUTDOWN\", \"data\": {\"guest\": true, \"reason\": \"guest-shutdown\"}}\r\n");
  EXPECT_EQ(event.string_at("event"), "SHUTDOWN");
  EXPECT_TRUE(event.find("data")->find("guest")->as_bool());
  auto error = td::Json::parse(R"({"error": {"class": "GenericError", "desc": "bad \"thing\" \u00e9 \ud83d\ude00"}})");
  EXPECT_EQ(error.find("error")->string_at("desc"), "bad \"thing\" é 😀");
}

TEST(Json, DumpsWhatItParses) {
  td::Json v(td::Json::Object{{"execute", "set_link"},
                              {"arguments", td::Json::Object{{"name", "virtio-net-pci.1"}, {"up", false}}},
                              {"n", td::Json::Array{1, 2.5, nullptr, "a\nb"}}});
  std::string text = v.dump();
  EXPECT_EQ(text, R"({"execute":"set_link","arguments":{"name":"virtio-net-pci.1","up":false},"n":[1,2.5,null,"a\nb"]})");
  EXPECT_EQ(td::Json::parse(text).dump(), text);
}

TEST(Json, RejectsBrokenInputWithAnError) {
  for (const char* bad : {"", "{", "{\"a\" 1}", "[1,]", "\"unterminated", "tru", "{\"a\":1} x", "\"\\u12\"", "-"})
    EXPECT_THROW(td::Json::parse(bad), td::Error) << bad;
  std::string deep(10000, '[');
  EXPECT_THROW(td::Json::parse(deep), td::Error);
}
