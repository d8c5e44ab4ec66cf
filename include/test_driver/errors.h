// The errors the driver raises. Each maps to a Python exception class of the
// same name in test_driver.errors; all derive from Python's Exception, and
// RequestedAssertionFailed also from AssertionError, as upstream's do.
#pragma once

#include <stdexcept>
#include <string>
#include <utility>

namespace td {

// Any failure of the driver or of a test step.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A machine could not do what was asked: QEMU died, a socket closed, a wait
// timed out.
class MachineError : public Error {
 public:
  using Error::Error;
};

// A test step checked something and it did not hold (succeed, fail, wait_*).
class RequestedAssertionFailed : public Error {
 public:
  using Error::Error;
};

// QEMU answered a QMP command with an error.
class QmpError : public Error {
 public:
  using Error::Error;
  QmpError(const std::string& message, std::string class_name, std::string description)
      : Error(message), class_name(std::move(class_name)), description(std::move(description)) {}
  // QEMU's error reply: {"error": {"class": …, "desc": …}}.
  std::string class_name;
  std::string description;
};

// A polling condition returned false while the test ran.
class PollingConditionFailed : public Error {
 public:
  using Error::Error;
};

// A wait was cut short because the user interrupted the driver (SIGINT).
class Interrupted : public Error {
 public:
  Interrupted() : Error("interrupted") {}
};

}  // namespace td
