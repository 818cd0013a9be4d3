// The kiln._C extension module: one entry point, one init function per area.
#include <pybind11/pybind11.h>

#include "kiln/error.h"
#include "module.h"

namespace py = pybind11;

PYBIND11_MODULE(_C, m) {
  m.doc() = "kiln's C++ core";
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const kiln::ValueError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const kiln::TypeError& e) {
      PyErr_SetString(PyExc_TypeError, e.what());
    } catch (const kiln::IndexError& e) {
      PyErr_SetString(PyExc_IndexError, e.what());
    } catch (const kiln::NotImplementedError& e) {
      PyErr_SetString(PyExc_NotImplementedError, e.what());
    } catch (const kiln::Error& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what());
    }
  });
  kiln::python::init_types(m);
  kiln::python::init_tensor(m);
  kiln::python::init_autograd(m);
  kiln::python::init_ops_core(m);
  kiln::python::init_ops_elementwise(m);
  kiln::python::init_ops_shape(m);
  kiln::python::init_indexing(m);
  kiln::python::init_ops_linalg(m);
  kiln::python::init_ops_reduce(m);
  kiln::python::init_numpy(m);
  kiln::python::init_ops_join(m);
  kiln::python::init_ops_gather(m);
  kiln::python::init_dlpack(m);
  kiln::python::init_random(m);
  kiln::python::init_range(m);
  kiln::python::init_sort(m);
  kiln::python::init_ops_nn(m);
  kiln::python::init_optim(m);
  kiln::python::init_ops_conv(m);
  kiln::python::init_device(m);
  kiln::python::init_serialization(m);
  kiln::python::init_library(m);
  kiln::python::init_amp(m);
}
