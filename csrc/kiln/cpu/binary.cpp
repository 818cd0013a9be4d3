// Binary arithmetic, comparison, logical and bitwise kernels.
#include "kiln/cpu/loops.h"
#include "kiln/dispatch.h"
#include "kiln/functors.h"

namespace kiln::cpu {
KILN_REGISTER_KERNEL(add, CPU, (binary_kernel<fn::Add>));
KILN_REGISTER_KERNEL(sub, CPU, (binary_kernel<fn::Sub>));
KILN_REGISTER_KERNEL(mul, CPU, (binary_kernel<fn::Mul>));
KILN_REGISTER_KERNEL(div, CPU, (binary_float_kernel<fn::Div>));
KILN_REGISTER_KERNEL(floor_divide, CPU, (binary_kernel<fn::FloorDivide>));
KILN_REGISTER_KERNEL(remainder, CPU, (binary_kernel<fn::Remainder>));
KILN_REGISTER_KERNEL(fmod, CPU, (binary_kernel<fn::Fmod>));
KILN_REGISTER_KERNEL(pow, CPU, (binary_kernel<fn::Pow>));
KILN_REGISTER_KERNEL(relu_backward, CPU, (binary_kernel<fn::ReluBackward>));
KILN_REGISTER_KERNEL(maximum, CPU, (binary_kernel<fn::Maximum>));
KILN_REGISTER_KERNEL(minimum, CPU, (binary_kernel<fn::Minimum>));
KILN_REGISTER_KERNEL(fmax, CPU, (binary_kernel<fn::Fmax>));
KILN_REGISTER_KERNEL(fmin, CPU, (binary_kernel<fn::Fmin>));
KILN_REGISTER_KERNEL(atan2, CPU, (binary_float_kernel<fn::Atan2>));
KILN_REGISTER_KERNEL(hypot, CPU, (binary_float_kernel<fn::Hypot>));
KILN_REGISTER_KERNEL(eq, CPU, (binary_kernel<fn::Eq, true>));
KILN_REGISTER_KERNEL(ne, CPU, (binary_kernel<fn::Ne, true>));
KILN_REGISTER_KERNEL(lt, CPU, (binary_kernel<fn::Lt, true>));
KILN_REGISTER_KERNEL(le, CPU, (binary_kernel<fn::Le, true>));
KILN_REGISTER_KERNEL(gt, CPU, (binary_kernel<fn::Gt, true>));
KILN_REGISTER_KERNEL(ge, CPU, (binary_kernel<fn::Ge, true>));
KILN_REGISTER_KERNEL(logical_and, CPU, (binary_kernel<fn::LogicalAnd, true>));
KILN_REGISTER_KERNEL(logical_or, CPU, (binary_kernel<fn::LogicalOr, true>));
KILN_REGISTER_KERNEL(logical_xor, CPU, (binary_kernel<fn::LogicalXor, true>));
KILN_REGISTER_KERNEL(bitwise_and, CPU, (binary_int_kernel<fn::BitwiseAnd>));
KILN_REGISTER_KERNEL(bitwise_or, CPU, (binary_int_kernel<fn::BitwiseOr>));
KILN_REGISTER_KERNEL(bitwise_xor, CPU, (binary_int_kernel<fn::BitwiseXor>));

}  // namespace kiln::cpu
