// Binary arithmetic kernels.
#include "kiln/cpu/loops.h"
#include "kiln/dispatch.h"
#include "kiln/functors.h"

namespace kiln::cpu {

KILN_REGISTER_KERNEL(add, CPU, (binary_kernel<fn::Add>));
KILN_REGISTER_KERNEL(sub, CPU, (binary_kernel<fn::Sub>));
KILN_REGISTER_KERNEL(mul, CPU, (binary_kernel<fn::Mul>));
KILN_REGISTER_KERNEL(div, CPU, (binary_float_kernel<fn::Div>));

}  // namespace kiln::cpu
