// Unary math kernels.
#include "kiln/cpu/loops.h"
#include "kiln/dispatch.h"
#include "kiln/functors.h"

namespace kiln::cpu {

KILN_REGISTER_KERNEL(neg, CPU, (unary_kernel<fn::Neg>));
KILN_REGISTER_KERNEL(exp, CPU, (unary_float_kernel<fn::Exp>));
KILN_REGISTER_KERNEL(isfinite, CPU, (unary_kernel<fn::IsFinite, true>));

}  // namespace kiln::cpu
