// The kiln._C_cuda extension module. Loading it registers the CUDA kernels
// and allocator (static initializers in the other files of cuda/); these
// bindings are the runtime API behind kiln.cuda. Tensors never cross this
// module's Python boundary: tensor-level entry points go through the
// dispatcher and kiln._C.
#include <cuda_runtime_api.h>
#include <pybind11/pybind11.h>

#include <map>
#include <string>

#include "allocator.h"
#include "context.h"
#include "cublas.h"
#include "cudnn_status.h"

namespace py = pybind11;
using namespace kiln::cuda;

namespace {

uintptr_t as_int(cudaStream_t s) { return reinterpret_cast<uintptr_t>(s); }
cudaStream_t as_stream(uintptr_t p) { return reinterpret_cast<cudaStream_t>(p); }

// Owns a stream created for kiln.cuda.Stream (the default stream is not owned).
// Tensors allocated under it may outlive it: the allocator destroys it after them.
struct Stream {
  int device;
  cudaStream_t stream = nullptr;
  bool owned = false;
  ~Stream() {
    if (owned) release_stream(stream);
  }
};

struct Event {
  cudaEvent_t event = nullptr;
  int device = -1;  // set by the first record()
  ~Event() {
    if (event) cudaEventDestroy(event);
  }
};

// The kiln.backends switches kernels read (kiln/backends/_flag.py), by name.
struct BackendFlag {
  bool (*get)();
  void (*set)(bool);
};
const BackendFlag& backend_flag(const std::string& name) {
  static const std::map<std::string, BackendFlag> flags = {
      {"matmul.allow_tf32",
       {[] { return allow_tf32(Tf32Switch::Matmul); },
        [](bool v) { set_allow_tf32(Tf32Switch::Matmul, v); }}},
      {"cudnn.allow_tf32",
       {[] { return allow_tf32(Tf32Switch::Convolution); },
        [](bool v) { set_allow_tf32(Tf32Switch::Convolution, v); }}},
      {"cudnn.enabled", {&cudnn_enabled, &set_cudnn_enabled}},
      {"cudnn.deterministic", {&cudnn_deterministic, &set_cudnn_deterministic}},
      {"cudnn_sdp", {&cudnn_sdp_enabled, &set_cudnn_sdp_enabled}},
  };
  const auto it = flags.find(name);
  if (it == flags.end()) throw kiln::ValueError("[kiln.backends] unknown switch " + name);
  return it->second;
}

// A stream or event query: true when its work has finished.
bool done(cudaError_t err, const char* op) {
  if (err == cudaErrorNotReady) {
    cudaGetLastError();
    return false;
  }
  check(err, op);
  return true;
}

void init_streams(py::module_& m) {
  py::class_<Stream>(m, "_Stream")
      .def(py::init([](int device, int priority) {
             DeviceGuard guard(device);
             auto s = std::make_unique<Stream>();
             s->device = device;
             check(cudaStreamCreateWithPriority(&s->stream, cudaStreamNonBlocking, priority),
                   "Stream");
             s->owned = true;
             return s;
           }),
           py::arg("device"), py::arg("priority") = 0)
      .def_static("wrap", [](int device, uintptr_t ptr) {
        auto s = std::make_unique<Stream>();
        s->device = device;
        s->stream = as_stream(ptr);
        return s;
      })
      .def_readonly("device", &Stream::device)
      .def_property_readonly("ptr", [](const Stream& s) { return as_int(s.stream); })
      .def("synchronize", [](const Stream& s) {
        py::gil_scoped_release release;
        check(cudaStreamSynchronize(s.stream), "Stream.synchronize");
      })
      .def("query", [](const Stream& s) { return done(cudaStreamQuery(s.stream), "Stream.query"); })
      .def("wait_event", [](const Stream& s, const Event& e) {
        check(cudaStreamWaitEvent(s.stream, e.event, 0), "Stream.wait_event");
      });

  py::class_<Event>(m, "_Event")
      .def(py::init([](bool enable_timing, bool blocking) {
             auto e = std::make_unique<Event>();
             unsigned flags = (enable_timing ? 0 : cudaEventDisableTiming) |
                              (blocking ? cudaEventBlockingSync : 0);
             check(cudaEventCreateWithFlags(&e->event, flags), "Event");
             return e;
           }),
           py::arg("enable_timing") = false, py::arg("blocking") = false)
      .def("record", [](Event& e, const Stream& s) {
        DeviceGuard guard(s.device);
        check(cudaEventRecord(e.event, s.stream), "Event.record");
        e.device = s.device;
      })
      .def("synchronize", [](const Event& e) {
        py::gil_scoped_release release;
        check(cudaEventSynchronize(e.event), "Event.synchronize");
      })
      .def("query", [](const Event& e) { return done(cudaEventQuery(e.event), "Event.query"); })
      .def("elapsed_time", [](const Event& start, const Event& end) {
        float ms = 0;
        check(cudaEventElapsedTime(&ms, start.event, end.event), "Event.elapsed_time");
        return ms;
      });

  m.def("_current_stream", [](int device) { return as_int(current_stream(device)); });
  m.def("_set_current_stream",
        [](int device, uintptr_t ptr) { set_current_stream(device, as_stream(ptr)); });
}

}  // namespace

PYBIND11_MODULE(_C_cuda, m) {
  m.doc() = "kiln's CUDA backend";
  m.def("_unavailable_reason", &unavailable_reason);
  m.def("_cublas_error", []() -> std::string {
    try {
      cublas("cuBLAS");
      return "";
    } catch (const kiln::Error& e) {
      return e.what();
    }
  });
  m.def("device_count", &device_count);
  m.def("current_device", &current_device);
  m.def("set_device", &set_device);
  m.def("_runtime_version", [] {
    int v = 0;
    check(cudaRuntimeGetVersion(&v), "runtime_version");
    return v;
  });
  m.def("get_device_properties", [](int device) {
    cudaDeviceProp p{};
    check(cudaGetDeviceProperties(&p, device), "get_device_properties");
    py::dict d;
    d["name"] = std::string(p.name);
    d["major"] = p.major;
    d["minor"] = p.minor;
    d["total_memory"] = p.totalGlobalMem;
    d["multi_processor_count"] = p.multiProcessorCount;
    return d;
  });
  m.def("synchronize", [](int device) {
    py::gil_scoped_release release;
    DeviceGuard guard(device);
    check(cudaDeviceSynchronize(), "synchronize");
  });
  m.def("memory_allocated", &memory_allocated);
  m.def("max_memory_allocated", &max_memory_allocated);
  m.def("reset_peak_memory_stats", &reset_peak_memory_stats);
  m.def("empty_cache", &empty_cache);
  m.def("_record_stream", [](uintptr_t ptr, uintptr_t stream) {
    record_stream(reinterpret_cast<void*>(ptr), as_stream(stream));
  });
  m.def("_cudnn_error", [] { return cudnn_error(); });
  m.def("_cudnn_version", &cudnn_version);
  m.def("_cudnn_convolutions_run", &cudnn_convolutions_run);
  m.def("_cudnn_attentions_run", &cudnn_attentions_run);
  m.def("_cudnn_attention_declined", &cudnn_attention_declined);
  m.def("_get_flag", [](const std::string& name) { return backend_flag(name).get(); });
  m.def("_set_flag",
        [](const std::string& name, bool value) { backend_flag(name).set(value); });
  init_streams(m);
}
