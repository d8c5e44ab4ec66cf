// UEFI variable stores in test_driver._core: the store's records and files,
// and Machine's *_efi_vars methods (upstream's).
#pragma once

#include <pybind11/pybind11.h>

namespace td_bindings {

void bind_efi(pybind11::module_& m);

}  // namespace td_bindings
