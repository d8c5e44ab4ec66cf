// The machine classes of test_driver._core: BaseMachine (what works through
// the guest's shell) and Machine (QEMU), bound from the core's methods.
#pragma once

#include <pybind11/pybind11.h>

#include <memory>

#include "test_driver/start_command.h"

namespace td_bindings {

// The legacy start command from create_machine()'s dict of options.
std::shared_ptr<td::LegacyStartCommand> make_legacy_start_command(const pybind11::dict& args);

void bind_machines(pybind11::module_& m);

}  // namespace td_bindings
