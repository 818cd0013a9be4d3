#pragma once
#include <pybind11/pybind11.h>

namespace kiln::python {

// One init function per binding file (python/src/<area>.cpp).
void init_types(pybind11::module_& m);
void init_tensor(pybind11::module_& m);
void init_autograd(pybind11::module_& m);
void init_ops_core(pybind11::module_& m);
void init_ops_elementwise(pybind11::module_& m);
void init_ops_shape(pybind11::module_& m);
void init_indexing(pybind11::module_& m);
void init_ops_linalg(pybind11::module_& m);
void init_ops_reduce(pybind11::module_& m);
void init_numpy(pybind11::module_& m);
void init_ops_join(pybind11::module_& m);
void init_ops_gather(pybind11::module_& m);
void init_dlpack(pybind11::module_& m);
void init_random(pybind11::module_& m);
void init_range(pybind11::module_& m);
void init_sort(pybind11::module_& m);
void init_ops_nn(pybind11::module_& m);
void init_optim(pybind11::module_& m);
void init_ops_conv(pybind11::module_& m);
void init_device(pybind11::module_& m);
void init_serialization(pybind11::module_& m);
void init_library(pybind11::module_& m);
void init_amp(pybind11::module_& m);

}  // namespace kiln::python
