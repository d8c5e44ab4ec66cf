// UEFI variables: the store functions of efi_vars.h as test_driver._core's
// EfiStoreRecord, read_efi_store, write_efi_store and create_efi_store, and
// Machine's create_efi_vars, read_efi_vars, write_efi_vars and
// dump_efi_vars (upstream's), on the machine's store in its state
// directory, whose variables are test_driver.efi.EfiVariable objects.
#include "efi_bindings.h"

#include <fmt/format.h>
#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

#include <algorithm>

#include "test_driver/efi_vars.h"
#include "test_driver/errors.h"
#include "test_driver/machine.h"

namespace py = pybind11;
using namespace py::literals;

namespace td_bindings {
namespace {

using td::efi::Variable;

py::bytes to_bytes(const uint8_t* p, size_t n) { return {reinterpret_cast<const char*>(p), n}; }

template <size_t N>
std::array<uint8_t, N> to_array(const py::bytes& b, const char* what) {
  std::string s = b;
  if (s.size() != N) throw py::value_error(fmt::format("{} must be {} bytes, got {}", what, N, s.size()));
  std::array<uint8_t, N> out{};
  std::copy(s.begin(), s.end(), out.begin());
  return out;
}

// The machine's store, where its start script looks first (NixOS's
// qemu-vm.nix: NIX_EFI_VARS, default NAME-efi-vars.fd in the state directory).
std::filesystem::path store_path(const td::Machine& machine) {
  return machine.state_dir() / (machine.name() + "-efi-vars.fd");
}

void require_stopped(const td::Machine& machine) {
  if (machine.booted())
    throw td::RequestedAssertionFailed(
        "System is currently running and concurrent reads / writes to the OVMF variables is unsupported");
}

py::list read_store(const std::filesystem::path& path) {
  py::list out;
  for (auto& v : td::efi::live_variables(td::efi::parse_store(td::efi::read_store_file(path)))) out.append(v);
  return out;
}

void write_store(const std::filesystem::path& path, const std::vector<Variable>& variables) {
  std::vector<uint8_t> image =
      std::filesystem::exists(path) ? td::efi::read_store_file(path) : td::efi::empty_store();
  td::efi::write_store_file(path, td::efi::rewrite_store(image, variables));
}

py::object efi_module() { return py::module_::import("test_driver.efi"); }

}  // namespace

void bind_efi(py::module_& m) {
  py::class_<Variable>(m, "EfiStoreRecord",
                       "One variable's record in an OVMF variable store (edk2's AUTHENTICATED_VARIABLE_HEADER with "
                       "its name and data); test_driver.efi.EfiVariable is the script's view of it.")
      .def(py::init<>())
      .def_property(
          "vendor", [](const Variable& v) { return to_bytes(v.vendor.data(), v.vendor.size()); },
          [](Variable& v, const py::bytes& b) { v.vendor = to_array<16>(b, "vendor"); },
          "The vendor GUID's 16 bytes as stored (uuid.UUID(bytes_le=...) reads them).")
      .def_readwrite("name", &Variable::name)
      .def_property(
          "data", [](const Variable& v) { return to_bytes(v.data.data(), v.data.size()); },
          [](Variable& v, const py::bytes& b) {
            std::string s = b;
            v.data.assign(s.begin(), s.end());
          })
      .def_readwrite("attributes", &Variable::attributes)
      .def_readwrite("state", &Variable::state)
      .def_readwrite("monotonic_count", &Variable::monotonic_count)
      .def_property(
          "timestamp", [](const Variable& v) { return to_bytes(v.timestamp.data(), v.timestamp.size()); },
          [](Variable& v, const py::bytes& b) { v.timestamp = to_array<16>(b, "timestamp"); },
          "The EFI_TIME's 16 bytes as stored.")
      .def_readwrite("pubkey_index", &Variable::pubkey_index)
      .def_property_readonly("live", &Variable::live, "Whether the firmware reads this record as the variable.");

  m.def("read_efi_store", &read_store, "path"_a, py::call_guard<py::gil_scoped_release>(),
        "The variables of the OVMF variable store at path (the firmware's view: the last live record of each).");
  m.def("write_efi_store", &write_store, "path"_a, "records"_a, py::call_guard<py::gil_scoped_release>(),
        "Replace the variables of the store at path by records (a new 4 MB OVMF store if there is none).");
  m.def(
      "create_efi_store", [](const std::filesystem::path& path) { td::efi::write_store_file(path, td::efi::empty_store()); },
      "path"_a, py::call_guard<py::gil_scoped_release>(),
      "Write an empty OVMF variable store at path, laid out as OVMF_VARS_4M.fd.");

  auto machine = py::reinterpret_borrow<py::class_<td::Machine, td::BaseMachine, std::shared_ptr<td::Machine>>>(
      m.attr("Machine"));
  machine
      .def_property_readonly("efi_vars_path", &store_path,
                             "The machine's UEFI variable store: NAME-efi-vars.fd in its state directory, which "
                             "its start script uses (NIX_EFI_VARS).")
      .def(
          "create_efi_vars",
          [](td::Machine& self) {
            require_stopped(self);
            auto path = store_path(self);
            if (std::filesystem::exists(path)) throw td::RequestedAssertionFailed("OVMF variables store exists");
            td::efi::write_store_file(path, td::efi::empty_store());
          },
          "Create an empty UEFI variable store for the machine, before it starts (an error if it has one).")
      .def(
          "read_efi_vars",
          [](td::Machine& self) {
            require_stopped(self);
            auto path = store_path(self);
            py::list out;
            if (!std::filesystem::exists(path)) return out;
            py::object from_record = efi_module().attr("EfiVariable").attr("_from_record");
            for (auto record : read_store(path)) out.append(from_record(record));
            return out;
          },
          "The variables of the machine's UEFI store as EfiVariable objects ([] when it has none); the machine "
          "must be stopped.")
      .def(
          "write_efi_vars",
          [](td::Machine& self, const py::iterable& variables) {
            require_stopped(self);
            auto path = store_path(self);
            std::vector<Variable> records;
            if (std::filesystem::exists(path))
              for (auto r : read_store(path)) records.push_back(r.cast<Variable>());
            for (auto v : variables) {
              auto record = v.attr("_to_record")().cast<Variable>();
              auto same = std::find_if(records.begin(), records.end(), [&](const Variable& r) {
                return r.vendor == record.vendor && r.name == record.name;
              });
              if (same != records.end())
                *same = record;
              else
                records.push_back(record);
            }
            py::gil_scoped_release release;
            write_store(path, records);
          },
          "variables"_a,
          "Add EfiVariable objects to the machine's UEFI store (replacing those of the same vendor and name); the "
          "machine must be stopped.")
      .def(
          "dump_efi_vars",
          [](py::object self) {
            py::list variables = self.attr("read_efi_vars")();
            for (auto v : variables) v.attr("print")();
          },
          "Print every variable of the machine's UEFI store; the machine must be stopped.");
}

}  // namespace td_bindings
