// Device-side entry points of kiln._C that the CUDA backend provides through
// the dispatcher (pinned memory), and the hooks kiln.cuda uses when loading
// the backend.
#include "caster.h"
#include "kiln/error.h"
#include "kiln/dispatch.h"
#include "kiln/generator.h"
#include "kiln/ops/copy.h"
#include "kiln/storage.h"
#include "module.h"

namespace py = pybind11;

namespace kiln::python {

void init_device(py::module_& m) {
  m.def("_set_unavailable_reason", [](Device d, const std::string& why) {
    set_unavailable_reason(d.type, why);
  }, py::arg("device"), py::arg("why"));
  m.def("_resolve_device", &resolve_device, py::arg("device"));
  m.def("_has_kernel", [](const std::string& op, Device d) {
    return dispatch::has_kernel(op.c_str(), d.type);
  }, py::arg("op"), py::arg("device"));
  m.def("_ops_with_kernel", [](Device d) { return dispatch::ops_with_kernel(d.type); },
        py::arg("device"), "Names of the dispatcher ops with a kernel for the device's type.");
  m.def("_default_generator", [](Device d) { return default_generator(d); }, py::arg("device"));
  m.def("_pin_memory", [](const Tensor& t) {
    KILN_CHECK(t.device().is_cpu(), ValueError, "[pin_memory] cannot pin a tensor on ", t.device(),
               ": only CPU tensors can be pinned");
    KILN_CHECK(dispatch::has_kernel("pin_memory", DeviceType::CUDA), Error,
               "[pin_memory] pinned memory needs CUDA, which is not available (see "
               "kiln.cuda.is_available(explain=True))");
    static const dispatch::Op<Tensor(const Tensor&)> pin("pin_memory");
    Tensor out = pin.across_devices(Device(DeviceType::CUDA), t);
    Tensor dst = out;
    copy_(dst, detach(t));
    return out;
  }, py::arg("tensor"));
  m.def("_is_pinned", [](const Tensor& t) {
    if (!dispatch::has_kernel("is_pinned", DeviceType::CUDA)) return false;
    static const dispatch::Op<bool(const Tensor&)> is_pinned("is_pinned");
    return is_pinned.across_devices(Device(DeviceType::CUDA), t);
  }, py::arg("tensor"));
}

}  // namespace kiln::python
