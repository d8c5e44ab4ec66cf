#include "test_driver/shell_protocol.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

#include "test_driver/shell_words.h"

namespace td {

namespace {

// Reads the command's output from stdin and writes its frame: the first byte
// as two hex digits (bash's read, no process), then base64 of the rest.
constexpr std::string_view kFrameReaderName = "__td_frame";
constexpr std::string_view kFrameReader =
    "__td_frame() { local LC_ALL=C c; IFS= read -r -d '' -n 1 c && { printf %02x \"'$c\"; base64 --wrap 0; }; };";

}  // namespace

std::string shell_command_line(std::string_view wrapped, bool check_output, bool check_return) {
  // lastpipe: the frame's reader, the pipeline's last part, runs in the
  // backdoor shell itself (it has no job control, being non-interactive), so
  // a command forks one subshell, not two (measured in mini under TCG: 7.9
  // -> 5.2 ms a command). The command's subshell turns lastpipe off again:
  // its own pipelines run as in any bash. The reader is a function, so that
  // LC_ALL=C and its variable stay local to it.
  return fmt::format(
      "{} shopt -s lastpipe; ( shopt -u lastpipe; set -euo pipefail; {} ) {}| {}; echo{}\n", kFrameReader, wrapped,
      check_output ? "" : ">/dev/null 2>&1 ", kFrameReaderName, check_return ? " \" ${PIPESTATUS[0]}\"" : "");
}

std::string guest_timeout_command(std::string_view command, Duration timeout) {
  // s: this subshell, which the watchdog tells with USR1 that it fired. With
  // job control (set -m) each background job gets its process group; its
  // notices go to the saved stderr's stand-in /dev/null, the command's
  // stderr to the real one (fd 3). `wait` returns early when the trap runs,
  // so it is repeated until the command is gone. The command's input is
  // the shell's (<&0: a background job's would be /dev/null). SIGCONT after
  // SIGTERM, as coreutils' timeout: a stopped command gets the signal too.
  // The watchdog's process group is killed (its `sleep`, if it has one, too)
  // and reaped here: an orphan would be the guest's init's to reap, and
  // busybox init then sleeps a second before it sees a poweroff. SIGKILL:
  // a SIGTERM that reaches the watchdog while it is still being forked can
  // meet bash's own handler, which lets `read -t` run to its end, and the
  // command would then wait for the whole timeout.
  std::string n = timeout.to_string();
  return fmt::format(
      "exec 3>&2 2>/dev/null; set +e -m; f=0; trap f=1 USR1; s=$BASHPID; "
      "( exec 2>&3 3>&-; set +u +o pipefail -o posix; eval {command} ) <&0 & c=$!; "
      "{{ r=0; read -r -t {n} _ <>/dev/ptmx || r=$?; (( r > 128 )) || sleep {n}; kill -USR1 $s; kill -TERM -- -$c; kill -CONT -- -$c; }} "
      ">/dev/null 3>&- & w=$!; "
      "while :; do st=0; wait $c || st=$?; kill -0 $c || break; done; "
      "kill -KILL -- -$w $w; wait $w; (( f )) && st=124; exit $st",
      fmt::arg("command", bash_ansi_c_quote(command)), fmt::arg("n", n));
}

namespace {

constexpr size_t kHeadBytes = 200;
constexpr size_t kPieceBytes = 1 << 20;

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  return std::tolower(static_cast<unsigned char>(c)) - 'a' + 10;
}

}  // namespace

void ShellReply::append_output(std::string_view bytes) {
  while (!bytes.empty()) {
    // Not reserved up front: most outputs are a few bytes, and a megabyte
    // allocated per command costs the kernel more than the command.
    if (output_.empty() || output_.back().size() == kPieceBytes) output_.emplace_back();
    std::string& piece = output_.back();
    size_t n = std::min(bytes.size(), kPieceBytes - piece.size());
    piece.append(bytes.substr(0, n));
    bytes.remove_prefix(n);
  }
}

std::string ShellReply::take_output() {
  if (output_.size() == 1) return std::move(output_.front());
  std::string all;
  size_t total = 0;
  for (const auto& piece : output_) total += piece.size();
  all.reserve(total);
  for (const auto& piece : output_) all += piece;
  output_.clear();
  return all;
}

std::string ShellReply::not_a_frame() const {
  return "the guest shell answered with something that is not the driver's output frame: " + head_;
}

void ShellReply::fail(std::string why) {
  if (!error_) error_ = std::move(why);
  state_ = State::kGarbage;
}

void ShellReply::end_line() {
  State was = state_;
  state_ = State::kDone;
  if (error_) return;
  if ((was == State::kFirstByte && hex_.size() == 1) || (was == State::kBase64 && !base64_.finish())) {
    error_ = not_a_frame();
    return;
  }
  if (!has_status_) return;
  if (was != State::kStatus || status_text_.empty() || status_text_.size() > 9) {
    error_ = "expected an exit status from the guest shell, got " + (was == State::kStatus ? status_text_ : head_);
    return;
  }
  status_ = std::stoi(status_text_);
}

size_t ShellReply::feed(std::string_view data) {
  size_t i = 0;
  size_t n = data.size();
  if (head_.size() < kHeadBytes) {
    size_t line_end = data.find('\n');
    head_.append(data.substr(0, std::min({kHeadBytes - head_.size(), line_end, n})));
  }
  while (i < n && state_ != State::kDone) {
    char c = data[i];
    switch (state_) {
      case State::kFirstByte:
        ++i;
        if (c == '\n') {
          end_line();
        } else if (c == ' ' && has_status_ && hex_.empty()) {
          state_ = State::kStatus;
        } else if (std::isxdigit(static_cast<unsigned char>(c))) {
          hex_ += c;
          if (hex_.size() == 2) {
            append_output(std::string(1, static_cast<char>(hex_value(hex_[0]) * 16 + hex_value(hex_[1]))));
            state_ = State::kBase64;
          }
        } else {
          fail(not_a_frame());
        }
        break;
      case State::kBase64: {
        size_t j = i;
        while (j < n && data[j] != ' ' && data[j] != '\n') ++j;
        decoded_.clear();
        if (!base64_.feed(data.substr(i, j - i), decoded_)) {
          fail(not_a_frame());
          i = j;
          break;
        }
        append_output(decoded_);
        i = j;
        if (i == n) break;
        if (data[i] == '\n') {
          end_line();
        } else if (has_status_) {
          if (!base64_.finish())
            fail(not_a_frame());
          else
            state_ = State::kStatus;
        } else {
          fail(not_a_frame());
        }
        ++i;
        break;
      }
      case State::kStatus:
        ++i;
        if (c == '\n') {
          end_line();
        } else if (std::isdigit(static_cast<unsigned char>(c))) {
          status_text_ += c;
        } else {
          status_text_ += c;
          fail("expected an exit status from the guest shell, got " + status_text_ + std::string(data.substr(i, 100)));
        }
        break;
      case State::kGarbage: {
        size_t nl = data.find('\n', i);
        if (nl == std::string_view::npos) return n;
        i = nl + 1;
        end_line();
        break;
      }
      case State::kDone:
        break;
    }
  }
  return i;
}

}  // namespace td
