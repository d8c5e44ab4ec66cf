#include "test_driver/screen_recorder.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>

namespace {

using td::ScreenRecorder;
using namespace std::chrono_literals;

std::string ppm(int w, int h, const std::string& header_extra = "") {
  std::string header = "P6\n" + header_extra + std::to_string(w) + " " + std::to_string(h) + "\n255\n";
  return header + std::string(static_cast<size_t>(w * h * 3), '\x10');
}

std::string after(const std::vector<std::string>& argv, const std::string& option) {
  auto it = std::find(argv.begin(), argv.end(), option);
  return it == argv.end() || it + 1 == argv.end() ? "" : *(it + 1);
}

TEST(ScreenRecorder, PpmSizeReadsTheHeader) {
  auto size = ScreenRecorder::ppm_size(ppm(720, 400));
  ASSERT_TRUE(size);
  EXPECT_EQ(size->first, 720);
  EXPECT_EQ(size->second, 400);
  auto commented = ScreenRecorder::ppm_size(ppm(3, 2, "# made by QEMU\n"));
  ASSERT_TRUE(commented);
  EXPECT_EQ(*commented, std::make_pair(3, 2));
}

TEST(ScreenRecorder, PpmSizeRejectsWhatIsNotAWholeFrame) {
  EXPECT_FALSE(ScreenRecorder::ppm_size(""));
  EXPECT_FALSE(ScreenRecorder::ppm_size("P5\n2 2\n255\n...."));  // greyscale: not what screendump writes
  EXPECT_FALSE(ScreenRecorder::ppm_size("P6\n2 2\n"));
  std::string cut = ppm(4, 4);
  cut.pop_back();  // QEMU still writing it
  EXPECT_FALSE(ScreenRecorder::ppm_size(cut));
  EXPECT_FALSE(ScreenRecorder::ppm_size(ppm(0, 4)));
  EXPECT_FALSE(ScreenRecorder::ppm_size(ppm(4, 4) + "P6"));  // more than one frame: not sent as one
  EXPECT_FALSE(ScreenRecorder::ppm_size("P6\n99999999 2\n255\n"));
}

TEST(ScreenRecorder, CopiesDueFillTheTicksAScreendumpMissed) {
  auto start = std::chrono::steady_clock::time_point{} + 100s;
  td::Duration half{0.5};
  EXPECT_EQ(ScreenRecorder::copies_due(start, start, half, 0), 1u);           // the first frame
  EXPECT_EQ(ScreenRecorder::copies_due(start, start + 500ms, half, 1), 1u);   // on time
  EXPECT_EQ(ScreenRecorder::copies_due(start, start + 2100ms, half, 2), 3u);  // ticks 2, 3, 4 had none
  EXPECT_EQ(ScreenRecorder::copies_due(start, start + 200ms, half, 5), 1u);   // ahead: still the new screen
}

TEST(ScreenRecorder, FfmpegTakesPpmFramesAndFitsThemIntoOneSize) {
  ScreenRecorder::Options options;
  options.width = 800;
  options.height = 600;
  options.interval = td::Duration(0.5);
  auto argv = ScreenRecorder::ffmpeg_argv(options, "/out/server.webm");
  EXPECT_EQ(argv.front(), "ffmpeg");
  EXPECT_EQ(argv.back(), "/out/server.webm");
  EXPECT_EQ(after(argv, "-f"), "image2pipe");
  EXPECT_EQ(after(argv, "-framerate"), "2");
  EXPECT_EQ(after(argv, "-i"), "pipe:0");
  EXPECT_EQ(after(argv, "-c:v"), "ppm");
  std::string filter = after(argv, "-vf");
  EXPECT_NE(filter.find("min(800,iw)"), std::string::npos) << filter;
  EXPECT_NE(filter.find("pad=800:600"), std::string::npos) << filter;
  EXPECT_NE(std::find(argv.begin(), argv.end(), "libvpx-vp9"), argv.end());
  EXPECT_EQ(after(argv, "-g"), "20");  // a key frame every 10 seconds
}

TEST(ScreenRecorder, FileNamesCountVideosAfterTheFirst) {
  EXPECT_EQ(ScreenRecorder::file_name("server", 1), "server.webm");
  EXPECT_EQ(ScreenRecorder::file_name("server", 2), "server-2.webm");
}

TEST(ScreenRecorder, QemuArgsDoubleCommasInTheSocketPath) {
  auto args = ScreenRecorder::qemu_args("/tmp/a,b/video-qmp");
  ASSERT_EQ(args.size(), 4u);
  EXPECT_EQ(args[0], "-chardev");
  EXPECT_EQ(args[1], "socket,id=td-video,path=/tmp/a,,b/video-qmp,server=on,wait=off");
  EXPECT_EQ(args[2], "-mon");
  EXPECT_EQ(args[3], "chardev=td-video,mode=control");
}

}  // namespace
