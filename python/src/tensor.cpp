// kiln.Tensor: the class, its metadata properties and conversions.
#include <pybind11/stl.h>

#include "args.h"
#include "caster.h"
#include "kiln/autograd/meta.h"
#include "kiln/autograd/node.h"
#include "kiln/error.h"
#include "kiln/ops.h"
#include "kiln/parallel.h"
#include "module.h"

namespace py = pybind11;

namespace kiln::python {

namespace {
// Binds a const Tensor member function on the Python class (which wraps TensorImpl).
template <class R>
auto tm(R (Tensor::*f)() const) {
  return [f](const Tensor& t) { return (t.*f)(); };
}

py::tuple to_tuple(const Shape& s) {
  py::tuple t(s.size());
  for (size_t i = 0; i < s.size(); ++i) t[i] = py::int_(s[i]);
  return t;
}
}  // namespace

void init_tensor(py::module_& m) {
  py::class_<TensorImpl, std::shared_ptr<TensorImpl>> cls(m, "Tensor", py::dynamic_attr(),
                                                          "A multi-dimensional array with autograd.");
  // Tensor(data, requires_grad): a new leaf sharing data's memory. Python
  // subclasses (kiln.nn.Parameter) construct through this.
  cls.def(py::init([](const Tensor& data, bool requires_grad) {
            Tensor t = detach(data);
            t.impl()->view_base.reset();
            if (requires_grad) t.set_requires_grad(true);
            return t.impl_ptr();
          }),
          py::arg("data"), py::arg("requires_grad") = false)
      // `t.data`: a detached alias; `t.data = x` makes t look at x's memory in
      // place, so Python objects holding t (optimizers, modules) keep working.
      .def_property(
          "data", [](const Tensor& t) { return detach(t); },
          [](Tensor& t, const Tensor& src) {
            TensorImpl* i = t.impl();
            const TensorImpl* s = src.impl();
            KILN_CHECK(!t.requires_grad() || src.is_floating_point(), TypeError,
                       "[data] a tensor that requires grad can't take data of dtype ", src.dtype());
            i->storage = s->storage;
            i->sizes = s->sizes;
            i->strides = s->strides;
            i->offset = s->offset;
            i->dtype = s->dtype;
            i->view_base.reset();
            i->refresh_metadata();
          })
      .def_property_readonly("shape", [](const Tensor& t) { return to_tuple(t.sizes()); })
      .def("size", [](const Tensor& t) { return to_tuple(t.sizes()); })
      .def("size", [](const Tensor& t, int64_t d) { return t.size(d); }, py::arg("dim"))
      .def("stride", [](const Tensor& t) { return to_tuple(t.strides()); })
      .def("stride", [](const Tensor& t, int64_t d) { return t.stride(d); }, py::arg("dim"))
      .def("dim", tm(&Tensor::dim))
      .def("ndimension", tm(&Tensor::dim))
      .def_property_readonly("ndim", tm(&Tensor::dim))
      .def("numel", tm(&Tensor::numel))
      .def("nelement", tm(&Tensor::numel))
      .def("element_size", [](const Tensor& t) { return t.itemsize(); })
      .def_property_readonly("itemsize", [](const Tensor& t) { return t.itemsize(); })
      .def_property_readonly("nbytes", [](const Tensor& t) { return t.itemsize() * t.numel(); })
      .def_property_readonly("dtype", tm(&Tensor::dtype))
      .def_property_readonly("device", tm(&Tensor::device))
      .def_property_readonly("is_cuda", [](const Tensor& t) { return t.device().is_cuda(); })
      .def_property_readonly("is_cpu", [](const Tensor& t) { return t.device().is_cpu(); })
      .def("is_contiguous", tm(&Tensor::is_contiguous))
      .def("is_floating_point", tm(&Tensor::is_floating_point))
      .def("storage_offset", tm(&Tensor::storage_offset))
      .def("data_ptr", [](const Tensor& t) { return reinterpret_cast<uintptr_t>(t.data_ptr()); })
      .def("untyped_storage_nbytes", [](const Tensor& t) { return t.storage()->nbytes(); })
      .def_property_readonly("_version", tm(&Tensor::version))
      .def("_is_view", [](const Tensor& t) { return t.impl()->view_base != nullptr; })
      .def("_base_ptr", [](const Tensor& t) -> py::object {
        if (!t.impl()->view_base) return py::none();
        return py::cast(Tensor(t.impl()->view_base));
      })
      // Autograd state.
      .def_property(
          "requires_grad", tm(&Tensor::requires_grad),
          [](Tensor& t, bool r) { t.set_requires_grad(r); })
      .def(
          "requires_grad_",
          [](Tensor& t, bool r) {
            if (!(r && !t.is_leaf())) t.set_requires_grad(r);  // non-leaves already require grad
            return t;
          },
          py::arg("requires_grad") = true)
      .def_property_readonly("is_leaf", tm(&Tensor::is_leaf))
      .def_property(
          "grad", tm(&Tensor::grad), [](Tensor& t, std::optional<Tensor> g) { t.set_grad(g ? *g : Tensor()); })
      .def_property_readonly("grad_fn",
                             [](const Tensor& t) -> std::shared_ptr<autograd::Node> { return t.grad_fn(); })
      .def_property_readonly("output_nr", tm(&Tensor::output_nr))
      .def_property_readonly("retains_grad", [](const Tensor& t) {
        return t.impl()->autograd && t.impl()->autograd->retains_grad;
      })
      // Conversions.
      .def("item", [](const Tensor& t) { return item(t); })
      .def("contiguous", [](const Tensor& t) { return contiguous(t); })
      .def("clone", [](const Tensor& t) { return clone(t); })
      .def("detach", [](const Tensor& t) { return detach(t); })
      .def("detach_", [](Tensor& t) {
        KILN_CHECK(!t.impl()->view_base || !t.requires_grad(), Error,
                   "[detach_] can't detach views in-place. Use detach() instead.");
        if (t.impl()->autograd) {
          t.impl()->autograd->grad_fn.reset();
          t.impl()->autograd->requires_grad = false;
        }
        return t;
      })
      .def("_to_dtype", [](const Tensor& t, ScalarType d, bool copy) { return to_dtype(t, d, copy); },
           py::arg("dtype"), py::arg("copy") = false)
      .def("_to_device",
           [](const Tensor& t, Device d, bool copy, bool non_blocking) {
             return to_device(t, d, copy, non_blocking);
           },
           py::arg("device"), py::arg("copy") = false, py::arg("non_blocking") = false)
      .def("copy_",
           [](Tensor& t, const Tensor& src, bool non_blocking) { return copy_(t, src, non_blocking); },
           py::arg("src"), py::arg("non_blocking") = false)
      .def("fill_", [](Tensor& t, Scalar v) { return fill_(t, v); }, py::arg("value"))
      .def("fill_", [](Tensor& t, const Tensor& v) {
        KILN_CHECK(v.dim() == 0, ValueError, "[fill_] only supports 0-dimension value tensor but got "
                   "tensor with ", v.dim(), " dimensions");
        return fill_(t, item(v));
      }, py::arg("value"))
      .def("zero_", [](Tensor& t) { return zero_(t); });

  m.def("result_type", [](py::handle a, py::handle b) {
    Tensor x = tensor_or_scalar(a, Device(), "result_type");
    Tensor y = tensor_or_scalar(b, x.device(), "result_type");
    return result_type({x, y});
  });
  m.def("promote_types", &promote_types);
  m.def("get_default_dtype", &default_float_dtype);
  m.def("set_default_dtype", &set_default_float_dtype);
  m.def("get_num_threads", &get_num_threads);
  m.def("set_num_threads", &set_num_threads);
}

}  // namespace kiln::python
