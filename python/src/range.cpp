// arange, linspace, eye (Python wrappers in kiln/_range.py parse PyTorch's signatures).
#include <pybind11/stl.h>

#include "caster.h"
#include "kiln/ops/range.h"
#include "module.h"

namespace py = pybind11;

namespace kiln::python {

void init_range(py::module_& m) {
  m.def("_arange", [](Scalar start, Scalar end, Scalar step, std::optional<ScalarType> dtype,
                      Device device) { return arange(start, end, step, dtype, device); });
  m.def("_linspace", [](Scalar start, Scalar end, int64_t steps, std::optional<ScalarType> dtype,
                        Device device) { return linspace(start, end, steps, dtype, device); });
  m.def("_eye", [](int64_t n, std::optional<int64_t> m, std::optional<ScalarType> dtype,
                   Device device) { return eye(n, m, dtype, device); });
}

}  // namespace kiln::python
