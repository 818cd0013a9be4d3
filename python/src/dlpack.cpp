// DLPack both ways: Tensor.__dlpack__ / __dlpack_device__ (export) and
// kiln.from_dlpack (import). Zero-copy: an exported capsule keeps the kiln
// Storage alive; an imported tensor's Storage calls the producer's deleter
// when it dies. Versioned (1.x) capsules when the consumer asks for them,
// legacy "dltensor" capsules otherwise.
#include <Python.h>
#include <pybind11/stl.h>

#include "caster.h"
#include "dlpack.h"
#include "kiln/error.h"
#include "kiln/ops.h"
#include "module.h"

namespace py = pybind11;

namespace kiln::python {

namespace {

// Capsule names for each managed-tensor flavour, fresh and consumed.
template <class M>
struct CapsuleName;
template <>
struct CapsuleName<DLManagedTensor> {
  static constexpr const char* fresh = "dltensor";
  static constexpr const char* used = "used_dltensor";
};
template <>
struct CapsuleName<DLManagedTensorVersioned> {
  static constexpr const char* fresh = "dltensor_versioned";
  static constexpr const char* used = "used_dltensor_versioned";
};

DLDataType to_dl_dtype(ScalarType t) {
  const auto bits = static_cast<uint8_t>(itemsize(t) * 8);
  switch (t) {
    case ScalarType::Bool: return {kDLBool, 8, 1};
    case ScalarType::UInt8: return {kDLUInt, 8, 1};
    case ScalarType::BFloat16: return {kDLBfloat, 16, 1};
    case ScalarType::Float16:
    case ScalarType::Float32:
    case ScalarType::Float64: return {kDLFloat, bits, 1};
    default: return {kDLInt, bits, 1};
  }
}

ScalarType from_dl_dtype(DLDataType d) {
  KILN_CHECK(d.lanes == 1, TypeError, "[from_dlpack] vector dtypes (lanes=", int(d.lanes),
             ") are not supported");
  switch (d.code) {
    case kDLBool:
      if (d.bits == 8) return ScalarType::Bool;
      break;
    case kDLUInt:
      if (d.bits == 8) return ScalarType::UInt8;
      break;
    case kDLInt:
      if (d.bits == 8) return ScalarType::Int8;
      if (d.bits == 16) return ScalarType::Int16;
      if (d.bits == 32) return ScalarType::Int32;
      if (d.bits == 64) return ScalarType::Int64;
      break;
    case kDLFloat:
      if (d.bits == 16) return ScalarType::Float16;
      if (d.bits == 32) return ScalarType::Float32;
      if (d.bits == 64) return ScalarType::Float64;
      break;
    case kDLBfloat:
      if (d.bits == 16) return ScalarType::BFloat16;
      break;
    default: break;
  }
  throw TypeError(detail::concat("[from_dlpack] unsupported DLPack dtype (code ", int(d.code),
                                 ", bits ", int(d.bits), ")"));
}

DLDevice to_dl_device(Device d) {
  return {d.is_cpu() ? kDLCPU : kDLCUDA, d.is_cpu() ? 0 : d.index};
}

Device from_dl_device(DLDevice d) {
  switch (d.device_type) {
    case kDLCPU:
    case kDLCUDAHost: return Device(DeviceType::CPU);  // pinned host memory is plain CPU memory
    case kDLCUDA:
    case kDLCUDAManaged: return Device(DeviceType::CUDA, d.device_id);
    default: break;
  }
  throw ValueError(detail::concat("[from_dlpack] unsupported DLPack device type ",
                                  int(d.device_type), "; kiln supports CPU and CUDA"));
}

// ---- export ---------------------------------------------------------------------

// One allocation per export: the managed struct, the storage it keeps alive and
// the shape/strides arrays the DLTensor points into.
template <class M>
struct Exported {
  M managed{};
  std::shared_ptr<Storage> storage;
  Shape shape, strides;
  static void deleter(M* self) { delete static_cast<Exported*>(self->manager_ctx); }
};

// Capsule destructor: a capsule nobody consumed still owns its tensor.
template <class M>
void capsule_destructor(PyObject* capsule) {
  if (!PyCapsule_IsValid(capsule, CapsuleName<M>::fresh)) return;  // consumed (renamed)
  auto* m = static_cast<M*>(PyCapsule_GetPointer(capsule, CapsuleName<M>::fresh));
  if (m && m->deleter) m->deleter(m);
}

template <class M>
py::capsule export_tensor(const Tensor& t, bool copied) {
  auto* ex = new Exported<M>();
  ex->storage = t.storage();
  ex->shape = t.sizes();
  ex->strides = t.strides();
  M& m = ex->managed;
  m.manager_ctx = ex;
  m.deleter = &Exported<M>::deleter;
  if constexpr (std::is_same_v<M, DLManagedTensorVersioned>) {
    m.version = {KILN_DLPACK_MAJOR_VERSION, KILN_DLPACK_MINOR_VERSION};
    m.flags = copied ? KILN_DLPACK_FLAG_IS_COPIED : 0;
  }
  DLTensor& dl = m.dl_tensor;
  dl.data = t.data_ptr();
  dl.device = to_dl_device(t.device());
  dl.ndim = static_cast<int32_t>(t.dim());
  dl.dtype = to_dl_dtype(t.dtype());
  dl.shape = ex->shape.data();
  dl.strides = ex->strides.data();
  dl.byte_offset = 0;
  PyObject* cap = PyCapsule_New(&m, CapsuleName<M>::fresh, &capsule_destructor<M>);
  if (!cap) {
    delete ex;
    throw py::error_already_set();
  }
  return py::reinterpret_steal<py::capsule>(cap);
}

// (a, b) from a Python pair of ints; TypeError naming the argument otherwise.
std::pair<int, int> int_pair(py::handle h, const char* arg) {
  try {
    return h.cast<std::pair<int, int>>();
  } catch (const py::cast_error&) {
    throw TypeError(detail::concat("[__dlpack__] ", arg, " must be a pair of ints, got ",
                                   std::string(py::repr(h))));
  }
}

// The DLPack protocol reports export failures as BufferError.
[[noreturn]] void buffer_error(const std::string& msg) {
  PyErr_SetString(PyExc_BufferError, msg.c_str());
  throw py::error_already_set();
}

py::object dlpack(const Tensor& self, py::object stream, py::object max_version,
                  py::object dl_device, py::object copy) {
  if (self.requires_grad())
    buffer_error("[__dlpack__] can't export a tensor that requires grad; use tensor.detach()");
  if (self.device().is_cpu())
    KILN_CHECK(stream.is_none(), ValueError,
               "[__dlpack__] stream must be None for a cpu tensor, got ",
               std::string(py::repr(stream)));
  else
    py::module_::import("kiln.cuda.streams").attr("_dlpack_wait")(self.device().index, stream);
  if (!dl_device.is_none()) {
    auto want = int_pair(dl_device, "dl_device");
    const DLDevice have = to_dl_device(self.device());
    if (want.first != have.device_type || want.second != have.device_id)
      buffer_error(detail::concat("[__dlpack__] can't export a ", self.device(),
                                  " tensor to DLPack device (", want.first, ", ", want.second,
                                  ") without a copy across devices"));
  }
  const bool do_copy = !copy.is_none() && copy.cast<bool>();
  Tensor t = do_copy ? clone(self) : self;
  bool versioned = false;
  if (!max_version.is_none()) {
    auto v = int_pair(max_version, "max_version");
    versioned = v.first >= 1;
  }
  if (versioned) return export_tensor<DLManagedTensorVersioned>(t, do_copy);
  return export_tensor<DLManagedTensor>(t, do_copy);
}

// ---- import ---------------------------------------------------------------------

template <class M>
void call_deleter(void* p) {
  auto* m = static_cast<M*>(p);
  if (m->deleter) m->deleter(m);
}

// A tensor over the memory `dl` describes; the storage releases `m` when it dies.
template <class M>
Tensor wrap(M* m) {
  const DLTensor& dl = m->dl_tensor;
  KILN_CHECK(dl.ndim >= 0, ValueError, "[from_dlpack] negative ndim ", dl.ndim);
  const ScalarType dtype = from_dl_dtype(dl.dtype);
  const Device device = from_dl_device(dl.device);
  Shape sizes(dl.shape, dl.shape + dl.ndim);
  Shape strides = dl.strides ? Shape(dl.strides, dl.strides + dl.ndim) : contiguous_strides(sizes);
  int64_t extent = 1;  // elements spanned, from the first one
  bool empty = false;
  for (int32_t d = 0; d < dl.ndim; ++d) {
    KILN_CHECK(sizes[d] >= 0, ValueError, "[from_dlpack] negative size in shape ", sizes);
    KILN_CHECK(strides[d] >= 0 || sizes[d] <= 1, ValueError,
               "[from_dlpack] negative strides are not supported (strides ", strides, ")");
    if (sizes[d] == 0) empty = true;
    if (sizes[d] > 1) extent += (sizes[d] - 1) * strides[d];
  }
  for (auto& s : strides)
    if (s < 0) s = 0;  // only on size-1 dims, where the stride is never used
  const size_t nbytes = empty ? 0 : static_cast<size_t>(extent) * itemsize(dtype);
  void* data = static_cast<char*>(dl.data) + dl.byte_offset;
  auto storage = Storage::borrow(data, nbytes, device, &call_deleter<M>, m);
  return make_tensor(std::move(storage), std::move(sizes), std::move(strides), 0, dtype);
}

template <class M>
Tensor consume(PyObject* capsule) {
  auto* m = static_cast<M*>(PyCapsule_GetPointer(capsule, CapsuleName<M>::fresh));
  if (!m) throw py::error_already_set();
  bool read_only = false;
  if constexpr (std::is_same_v<M, DLManagedTensorVersioned>) {
    // Unknown major versions may lay out DLTensor differently: leave the capsule unconsumed.
    KILN_CHECK(m->version.major <= KILN_DLPACK_MAJOR_VERSION, ValueError,
               "[from_dlpack] DLPack version ", m->version.major, ".", m->version.minor,
               " is newer than the supported ", KILN_DLPACK_MAJOR_VERSION, ".",
               KILN_DLPACK_MINOR_VERSION);
    read_only = (m->flags & KILN_DLPACK_FLAG_READ_ONLY) != 0;
  }
  Tensor t = wrap(m);  // from here on the storage owns `m`
  PyCapsule_SetName(capsule, CapsuleName<M>::used);
  // kiln tensors are always writable: read-only memory is copied instead of shared.
  return read_only ? clone(t) : t;
}

Tensor from_dlpack(py::object obj) {
  py::object capsule = obj;
  if (!PyCapsule_CheckExact(obj.ptr())) {
    KILN_CHECK(py::hasattr(obj, "__dlpack__"), TypeError,
               "[from_dlpack] expected an object with __dlpack__ or a DLPack capsule, got ",
               std::string(py::str(py::type::of(obj).attr("__name__"))));
    py::object fn = obj.attr("__dlpack__");
    // A CUDA producer makes kiln's current stream wait for its own work.
    py::object stream = py::none();
    if (py::hasattr(obj, "__dlpack_device__")) {
      auto [type, index] = obj.attr("__dlpack_device__")().cast<std::pair<int, int>>();
      if (type == kDLCUDA || type == kDLCUDAManaged)
        stream = py::module_::import("kiln.cuda.streams").attr("_dlpack_stream")(index);
    }
    try {
      capsule = fn(py::arg("stream") = stream,
                   py::arg("max_version") = py::make_tuple(KILN_DLPACK_MAJOR_VERSION,
                                                           KILN_DLPACK_MINOR_VERSION));
    } catch (py::error_already_set& e) {
      if (!e.matches(PyExc_TypeError)) throw;
      // A producer older than the max_version keyword (and, on the CPU, maybe than stream).
      capsule = stream.is_none() ? fn() : fn(py::arg("stream") = stream);
    }
  }
  PyObject* cap = capsule.ptr();
  if (PyCapsule_IsValid(cap, CapsuleName<DLManagedTensorVersioned>::fresh))
    return consume<DLManagedTensorVersioned>(cap);
  if (PyCapsule_IsValid(cap, CapsuleName<DLManagedTensor>::fresh))
    return consume<DLManagedTensor>(cap);
  const char* name = PyCapsule_CheckExact(cap) ? PyCapsule_GetName(cap) : nullptr;
  PyErr_Clear();
  throw ValueError(detail::concat(
      "[from_dlpack] expected a capsule named 'dltensor' or 'dltensor_versioned', got ",
      name ? std::string("'") + name + "'" : std::string("a non-capsule"),
      " (a DLPack capsule can be consumed only once)"));
}

}  // namespace

void init_dlpack(py::module_& m) {
  auto cls = py::reinterpret_borrow<py::class_<TensorImpl, std::shared_ptr<TensorImpl>>>(
      m.attr("Tensor"));
  cls.def("__dlpack__", &dlpack, py::kw_only(), py::arg("stream") = py::none(),
          py::arg("max_version") = py::none(), py::arg("dl_device") = py::none(),
          py::arg("copy") = py::none(),
          "Exports this tensor as a DLPack capsule (zero-copy unless copy=True).");
  cls.def(
      "__dlpack_device__",
      [](const Tensor& t) {
        const DLDevice d = to_dl_device(t.device());
        return py::make_tuple(static_cast<int>(d.device_type), d.device_id);
      },
      "(DLPack device type, device index) of this tensor.");
  m.def("from_dlpack", &from_dlpack, py::arg("ext_tensor"),
        "A tensor sharing memory with any object that supports DLPack (or a DLPack capsule).");
}

}  // namespace kiln::python
