// Binary arithmetic kernels.
#include "kiln/cpu/loops.h"
#include "kiln/dispatch.h"
#include "kiln/functors.h"

namespace kiln::cpu {

KILN_REGISTER_KERNEL(add, CPU, (binary_kernel<fn::Add>));
KILN_REGISTER_KERNEL(sub, CPU, (binary_kernel<fn::Sub>));
KILN_REGISTER_KERNEL(mul, CPU, (binary_kernel<fn::Mul>));
KILN_REGISTER_KERNEL(div, CPU, (binary_float_kernel<fn::Div>));
KILN_REGISTER_KERNEL(eq, CPU, (binary_kernel<fn::Eq, true>));
KILN_REGISTER_KERNEL(ne, CPU, (binary_kernel<fn::Ne, true>));
KILN_REGISTER_KERNEL(lt, CPU, (binary_kernel<fn::Lt, true>));
KILN_REGISTER_KERNEL(le, CPU, (binary_kernel<fn::Le, true>));
KILN_REGISTER_KERNEL(gt, CPU, (binary_kernel<fn::Gt, true>));
KILN_REGISTER_KERNEL(ge, CPU, (binary_kernel<fn::Ge, true>));

}  // namespace kiln::cpu
