// A machine's serial console as the driver sees it: the process's output
// (QEMU's -serial stdio), read on a thread of its own, logged line by line
// as it arrives under the machine's name, and kept for the console waits.
#pragma once

#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "test_driver/deadline.h"

namespace td {

class Logger;

class SerialReader {
 public:
  // Reads `fd` (duplicated) until its end; logs to `log` as `machine_name`.
  SerialReader(std::string machine_name, Logger& log, int fd);
  ~SerialReader() { stop(); }
  SerialReader(const SerialReader&) = delete;
  SerialReader& operator=(const SerialReader&) = delete;

  void stop();
  // Waits (at most `limit`) for the reader to reach the end of the output,
  // so that nothing the process printed before exiting is lost.
  void drain(std::chrono::milliseconds limit);

  // The last `n` lines.
  std::vector<std::string> recent(size_t n) const;
  // Blocks until there are more than `count` lines, the output ended, or
  // `until` passed; returns the line count.
  size_t wait_for_more(size_t count, Clock::time_point until);
  bool ended() const;
  size_t size() const;
  // Lines [from, to) joined with newlines.
  std::string join(size_t from, size_t to) const;
  // Every line, each with its newline.
  std::string all() const;

 private:
  void run();
  void read_more();
  // Logs what one read brought, then keeps it for the console waits.
  void emit(std::vector<std::string> batch);

  std::string machine_name_;
  Logger& log_;
  boost::asio::io_context io_;
  boost::asio::posix::stream_descriptor pipe_;
  std::array<char, 65536> chunk_;
  std::string partial_;
  std::thread thread_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::string> lines_;
  bool eof_ = false;
};

}  // namespace td
