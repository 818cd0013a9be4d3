#include "kiln/ops/dropout.h"

#include "kiln/dtype_dispatch.h"
#include "kiln/error.h"
#include "kiln/ops/creation.h"
#include "kiln/ops/elementwise.h"
#include "kiln/ops/random.h"

namespace kiln {

namespace {

// input * mask, with mask of `mask_shape` (broadcast to input) drawn from Bernoulli(1-p)
// and scaled by 1/(1-p). The mask is a constant, so mul's backward is the exact gradient.
Tensor masked_dropout(const char* op, const Tensor& input, double p, bool training,
                      const Shape& mask_shape, const GeneratorPtr& gen) {
  KILN_CHECK(p >= 0 && p <= 1, ValueError, "[", op, "] expected p in [0, 1], got ", p);
  visit_floating(input.dtype(), op, [](auto) {});
  if (!training || p == 0) return input;
  if (p == 1) return input * zeros(mask_shape, input.dtype(), input.device());
  Tensor mask = empty(mask_shape, input.dtype(), input.device());
  bernoulli_(mask, 1 - p, gen);
  mul_(mask, wrapped_scalar(1 / (1 - p), input.device()));
  return input * mask;
}

}  // namespace

Tensor dropout(const Tensor& input, double p, bool training, const GeneratorPtr& gen) {
  return masked_dropout("dropout", input, p, training, input.sizes(), gen);
}

Tensor dropout2d(const Tensor& input, double p, bool training, const GeneratorPtr& gen) {
  KILN_CHECK(input.dim() >= 2, ValueError, "[dropout2d] expected input of shape (N, C, *), got ",
             input.sizes());
  Shape mask_shape(input.dim(), 1);
  mask_shape[0] = input.sizes()[0];
  mask_shape[1] = input.sizes()[1];
  return masked_dropout("dropout2d", input, p, training, mask_shape, gen);
}

}  // namespace kiln
