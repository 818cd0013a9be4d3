#pragma once
#include <pybind11/pybind11.h>

namespace kiln::python {

// One init function per binding file (python/src/<area>.cpp).
void init_types(pybind11::module_& m);
void init_tensor(pybind11::module_& m);
void init_autograd(pybind11::module_& m);
void init_ops_core(pybind11::module_& m);
void init_ops_elementwise(pybind11::module_& m);
void init_numpy(pybind11::module_& m);

}  // namespace kiln::python
