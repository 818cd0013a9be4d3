// kiln.Generator, seeding functions and the random sampling ops.
// Python wrappers in kiln/_random.py add *size, dtype defaults and requires_grad.
#include <pybind11/stl.h>

#include <array>
#include <limits>

#include "args.h"
#include "caster.h"
#include "kiln/error.h"
#include "kiln/generator.h"
#include "kiln/ops/random.h"
#include "module.h"

namespace py = pybind11;

namespace kiln::python {

namespace {

// PyTorch accepts seeds in [-2^63, 2^64); negative ones wrap to uint64.
uint64_t to_seed(py::handle h, const char* op) {
  if (!PyLong_Check(h.ptr()) || PyBool_Check(h.ptr()))
    throw py::type_error(std::string("[") + op + "] seed must be an int, got " +
                         std::string(py::str(py::type::of(h).attr("__name__"))));
  py::int_ v = py::reinterpret_borrow<py::int_>(h);
  const py::int_ lo(std::numeric_limits<int64_t>::min());
  const py::int_ hi(std::numeric_limits<uint64_t>::max());
  if (v < lo || v > hi)
    throw py::value_error(std::string("[") + op + "] seed must be in [-0x8000000000000000, "
                          "0xffffffffffffffff], got " + std::string(py::str(v)));
  return py::cast<uint64_t>(v & hi);
}

// `generator=` arguments: None means the default generator.
using Gen = std::optional<GeneratorPtr>;
GeneratorPtr gen_of(const Gen& g) { return g ? *g : nullptr; }

}  // namespace

void init_random(py::module_& m) {
  py::class_<Generator, GeneratorPtr>(m, "Generator",
                                      "A Philox4x32-10 random number generator for one device.")
      .def(py::init([](Device device) { return std::make_shared<Generator>(device); }),
           py::arg("device") = Device())
      .def_property_readonly("device", &Generator::device)
      .def("manual_seed", [](const GeneratorPtr& g, py::handle seed) {
        g->manual_seed(to_seed(seed, "Generator.manual_seed"));
        return g;
      }, py::arg("seed"), "Seeds the generator and restarts its stream; returns the generator.")
      .def("seed", &Generator::seed, "Seeds from a nondeterministic source; returns the seed.")
      .def("initial_seed", &Generator::initial_seed)
      .def("get_state", &Generator::get_state, "The state as a uint8 tensor.")
      .def("set_state", [](const GeneratorPtr& g, const Tensor& state) {
        g->set_state(state);
        return g;
      }, py::arg("new_state"));
  m.attr("default_generator") = default_generator();

  m.def("manual_seed", [](py::handle seed) {
    manual_seed(to_seed(seed, "manual_seed"));
    return default_generator();
  }, py::arg("seed"), "Seeds every device's default generator; returns the CPU one.");
  m.def("seed", [] {
    const uint64_t s = default_generator()->seed();
    manual_seed(s);
    return s;
  }, "Seeds the default generators nondeterministically; returns the seed.");
  m.def("initial_seed", [] { return default_generator()->initial_seed(); });
  m.def("get_rng_state", [] { return default_generator()->get_state(); });
  m.def("set_rng_state", [](const Tensor& s) { default_generator()->set_state(s); },
        py::arg("new_state"));

  // For tests: the raw Philox4x32-10 block (checked against the Random123 known answers).
  m.def("_philox4x32_10", [](std::array<uint32_t, 4> ctr, std::array<uint32_t, 2> key) {
    const Philox4x32 r = philox4x32_10({{ctr[0], ctr[1], ctr[2], ctr[3]}}, key[0], key[1]);
    return std::array<uint32_t, 4>{r.v[0], r.v[1], r.v[2], r.v[3]};
  });
  m.def("_rand", [](const Shape& s, ScalarType d, Device dev, const Gen& g) {
    return rand(s, d, dev, gen_of(g));
  });
  m.def("_randn", [](const Shape& s, ScalarType d, Device dev, const Gen& g) {
    return randn(s, d, dev, gen_of(g));
  });
  m.def("_randint", [](int64_t low, int64_t high, const Shape& s, ScalarType d, Device dev,
                       const Gen& g) { return randint(low, high, s, d, dev, gen_of(g)); });
  m.def("_randperm", [](int64_t n, ScalarType d, Device dev, const Gen& g) {
    return randperm(n, d, dev, gen_of(g));
  });

  auto cls = py::reinterpret_borrow<py::class_<TensorImpl, std::shared_ptr<TensorImpl>>>(
      m.attr("Tensor"));
  cls.def("uniform_", [](Tensor& t, double from, double to, const Gen& g) {
    return uniform_(t, from, to, gen_of(g));
  }, py::arg("from") = 0.0, py::arg("to") = 1.0, py::kw_only(), py::arg("generator") = py::none());
  cls.def("normal_", [](Tensor& t, double mean, double std, const Gen& g) {
    return normal_(t, mean, std, gen_of(g));
  }, py::arg("mean") = 0.0, py::arg("std") = 1.0, py::kw_only(), py::arg("generator") = py::none());
  // random_(), random_(to), random_(from, to=None), as in PyTorch: a lone
  // positional bound is `to`, a lone from= keyword is `from`.
  cls.def("random_", [](Tensor& t, py::args args, py::kwargs kwargs) {
    std::optional<int64_t> from, to;
    if (args.size() == 1) to = args[0].cast<int64_t>();
    if (args.size() >= 2) {
      from = args[0].cast<int64_t>();
      if (!args[1].is_none()) to = args[1].cast<int64_t>();
    }
    KILN_CHECK(args.size() <= 2, TypeError, "[random_] takes at most 2 positional arguments, got ",
               args.size());
    GeneratorPtr gen;
    for (auto [key, value] : kwargs) {
      const std::string k = py::cast<std::string>(key);
      if (k == "from") from = value.cast<int64_t>();
      else if (k == "to") to = value.is_none() ? std::nullopt : std::optional(value.cast<int64_t>());
      else if (k == "generator") gen = value.is_none() ? nullptr : value.cast<GeneratorPtr>();
      else KILN_CHECK(false, TypeError, "[random_] got an unexpected keyword argument '", k, "'");
    }
    return random_(t, from.value_or(0), to, gen);
  });
  cls.def("bernoulli_", [](Tensor& t, py::handle p, const Gen& g) {
    if (is_python_scalar(p)) return bernoulli_(t, to_scalar(p).to_double(), gen_of(g));
    return bernoulli_(t, py::cast<Tensor>(p), gen_of(g));
  }, py::arg("p") = 0.5, py::kw_only(), py::arg("generator") = py::none());

  // bernoulli(input) samples with input's probabilities; bernoulli(input, p) with p.
  auto bernoulli_fn = [](const Tensor& t, py::handle p, const Gen& g) {
    if (p.is_none()) return bernoulli(t, gen_of(g));
    Tensor out = empty_like(t);
    if (is_python_scalar(p)) return bernoulli_(out, to_scalar(p).to_double(), gen_of(g));
    return bernoulli_(out, py::cast<Tensor>(p), gen_of(g));
  };
  m.def("bernoulli", bernoulli_fn, py::arg("input"), py::arg("p") = py::none(), py::kw_only(),
        py::arg("generator") = py::none(),
        "0/1 samples, 1 with probability input[i] (or p when given); input's dtype.");
  cls.def("bernoulli", bernoulli_fn, py::arg("p") = py::none(), py::kw_only(),
          py::arg("generator") = py::none());
  auto multinomial_fn = [](const Tensor& t, int64_t n, bool replacement, const Gen& g) {
    return multinomial(t, n, replacement, gen_of(g));
  };
  m.def("multinomial", multinomial_fn, py::arg("input"), py::arg("num_samples"),
        py::arg("replacement") = false, py::kw_only(), py::arg("generator") = py::none(),
        "Category indices drawn per row of input (non-negative weights), as int64.");
  cls.def("multinomial", multinomial_fn, py::arg("num_samples"), py::arg("replacement") = false,
          py::kw_only(), py::arg("generator") = py::none());
}

}  // namespace kiln::python
