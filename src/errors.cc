#include "test_driver/errors.h"
// The error classes are header-only; this file anchors them in the library.
