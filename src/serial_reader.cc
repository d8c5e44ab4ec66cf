#include "test_driver/serial_reader.h"

#include <unistd.h>

#include <boost/asio/read.hpp>
#include <cctype>

#include "test_driver/logger.h"
#include "test_driver/utf8.h"

namespace asio = boost::asio;

namespace td {
namespace {

std::string clean_line(std::string_view raw) {
  std::string line = to_valid_utf8(raw);
  std::erase(line, '\r');
  while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
  return line;
}

}  // namespace

SerialReader::SerialReader(std::string machine_name, Logger& log, int fd)
    : machine_name_(std::move(machine_name)), log_(log), pipe_(io_, ::dup(fd)) {
  thread_ = std::thread([this] { run(); });
}

void SerialReader::stop() {
  if (!thread_.joinable()) return;
  io_.stop();
  thread_.join();
}

void SerialReader::drain(std::chrono::milliseconds limit) {
  std::unique_lock lock(mutex_);
  changed_.wait_for(lock, limit, [&] { return eof_; });
}

std::vector<std::string> SerialReader::recent(size_t n) const {
  std::lock_guard lock(mutex_);
  size_t from = lines_.size() > n ? lines_.size() - n : 0;
  return {lines_.begin() + static_cast<long>(from), lines_.end()};
}

size_t SerialReader::wait_for_more(size_t count, Clock::time_point until) {
  std::unique_lock lock(mutex_);
  changed_.wait_until(lock, until, [&] { return lines_.size() > count || eof_; });
  return lines_.size();
}

bool SerialReader::ended() const {
  std::lock_guard lock(mutex_);
  return eof_;
}

size_t SerialReader::size() const {
  std::lock_guard lock(mutex_);
  return lines_.size();
}

std::string SerialReader::join(size_t from, size_t to) const {
  std::lock_guard lock(mutex_);
  std::string out;
  for (size_t i = from; i < to && i < lines_.size(); ++i) {
    if (i > from) out += '\n';
    out += lines_[i];
  }
  return out;
}

std::string SerialReader::all() const {
  std::lock_guard lock(mutex_);
  std::string out;
  for (const auto& line : lines_) {
    out += line;
    out += '\n';
  }
  return out;
}

void SerialReader::run() {
  read_more();
  io_.run();
  if (!partial_.empty()) emit({clean_line(partial_)});
  std::lock_guard lock(mutex_);
  eof_ = true;
  changed_.notify_all();
}

void SerialReader::read_more() {
  pipe_.async_read_some(asio::buffer(chunk_), [this](boost::system::error_code ec, size_t n) {
    // Only the new bytes are searched: a line of megabytes arrives in many
    // chunks, and searching it whole after each one was quadratic.
    size_t search_from = partial_.size();
    partial_.append(chunk_.data(), n);
    std::vector<std::string> batch;
    size_t start = 0;
    for (size_t nl; (nl = partial_.find('\n', search_from)) != std::string::npos; start = search_from = nl + 1)
      batch.push_back(clean_line(std::string_view(partial_).substr(start, nl - start)));
    partial_.erase(0, start);
    emit(std::move(batch));
    if (!ec) read_more();
  });
}

void SerialReader::emit(std::vector<std::string> batch) {
  if (batch.empty()) return;
  log_.log_serial(batch, machine_name_);
  std::lock_guard lock(mutex_);
  for (auto& line : batch) lines_.push_back(std::move(line));
  changed_.notify_all();
}

}  // namespace td
