// Mixed precision: the autocast state (kiln.autocast, kiln.is_autocast_enabled,
// ...) and the gradient scaler's ops (kiln.amp.GradScaler).
#include "kiln/ops/amp.h"

#include <pybind11/stl.h>

#include "caster.h"
#include "kiln/autocast.h"
#include "kiln/error.h"
#include "module.h"

namespace py = pybind11;

namespace kiln::python {
namespace {

DeviceType device_type(const std::string& name) {
  if (name == "cpu") return DeviceType::CPU;
  if (name == "cuda") return DeviceType::CUDA;
  throw ValueError(
      detail::concat("[autocast] unsupported device type '", name, "'; expected 'cpu' or 'cuda'"));
}

}  // namespace

void init_amp(py::module_& m) {
  m.def(
      "is_autocast_enabled",
      [](const std::optional<std::string>& dev) {
        return autocast::is_enabled(device_type(dev.value_or("cuda")));
      },
      py::arg("device_type") = py::none(),
      "Whether autocast is on for the device type (CUDA when not given) in this thread.");
  m.def(
      "set_autocast_enabled",
      [](const std::string& dev, bool enabled) {
        autocast::set_enabled(device_type(dev), enabled);
      },
      py::arg("device_type"), py::arg("enabled"));
  m.def(
      "get_autocast_dtype",
      [](const std::string& dev) { return autocast::get_dtype(device_type(dev)); },
      py::arg("device_type"), "The dtype autocast casts to on the device type.");
  m.def(
      "set_autocast_dtype",
      [](const std::string& dev, ScalarType dtype) {
        autocast::set_dtype(device_type(dev), dtype);
      },
      py::arg("device_type"), py::arg("dtype"));
  m.def(
      "_is_autocast_available",
      [](const std::string& dev) { return dev == "cpu" || dev == "cuda"; }, py::arg("device_type"));
  m.def("is_autocast_cache_enabled", &autocast::is_cache_enabled);
  m.def("set_autocast_cache_enabled", &autocast::set_cache_enabled, py::arg("enabled"));
  m.def("clear_autocast_cache", &autocast::clear_cache);
  m.def("autocast_increment_nesting", &autocast::increment_nesting);
  m.def("autocast_decrement_nesting", &autocast::decrement_nesting);
  m.def("_is_autocast_active", &autocast::is_active,
        "Autocast is on for some device type and not suspended (the ops' fast-path test).");
  m.def("_is_autocast_suspended", &autocast::is_suspended);
  m.def("_set_autocast_suspended", &autocast::set_suspended, py::arg("suspended"));
  m.def(
      "_autocast_cast",
      [](const Tensor& t, ScalarType dtype) { return autocast::cast(t, dtype, t.device().type); },
      py::arg("tensor"), py::arg("dtype"),
      "`tensor` cast as autocast casts op inputs (floating, not float64; cached weights).");

  m.def("_amp_foreach_non_finite_check_and_unscale_", &amp_foreach_non_finite_check_and_unscale_,
        py::arg("tensors"), py::arg("found_inf"), py::arg("inv_scale"),
        py::call_guard<py::gil_scoped_release>(),
        "Multiplies every tensor by inv_scale in place; sets found_inf to 1 on inf/nan.");
  m.def("_amp_update_scale_", &amp_update_scale_, py::arg("scale"), py::arg("growth_tracker"),
        py::arg("found_inf"), py::arg("scale_growth_factor"), py::arg("scale_backoff_factor"),
        py::arg("growth_interval"), py::call_guard<py::gil_scoped_release>(),
        "Updates the loss scale and growth tracker in place (GradScaler.update).");
}

}  // namespace kiln::python
