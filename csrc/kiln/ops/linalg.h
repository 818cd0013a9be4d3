#pragma once
#include <string>

#include "kiln/scalar.h"
#include "kiln/tensor.h"

namespace kiln {

// Matrix products, as in PyTorch. Operands must share one dtype (no promotion);
// float32/float64 run on OpenBLAS. All are differentiable twice.

// 1-D/2-D/batched product; batch dims broadcast.
KILN_API Tensor matmul(const Tensor& a, const Tensor& b);
// alpha * (a @ b) for operands of at least 2 dims, not differentiable: for ops
// with a backward of their own (attention), the scale rides on the GEMM.
KILN_API Tensor matmul_scaled(const Tensor& a, const Tensor& b, double alpha);
KILN_API Tensor mm(const Tensor& mat1, const Tensor& mat2);          // (n,m) @ (m,p)
KILN_API Tensor bmm(const Tensor& batch1, const Tensor& batch2);     // (b,n,m) @ (b,m,p)
// beta * input + alpha * (mat1 @ mat2); input broadcasts to the product's shape.
KILN_API Tensor addmm(const Tensor& input, const Tensor& mat1, const Tensor& mat2,
                      Scalar beta = 1, Scalar alpha = 1);
KILN_API Tensor baddbmm(const Tensor& input, const Tensor& batch1, const Tensor& batch2,
                        Scalar beta = 1, Scalar alpha = 1);
// input @ weight.T + bias; `bias` may be undefined.
KILN_API Tensor linear(const Tensor& input, const Tensor& weight, const Tensor& bias = Tensor());
KILN_API Tensor outer(const Tensor& a, const Tensor& b);
KILN_API Tensor dot(const Tensor& a, const Tensor& b);
// Einstein summation ("ij,jk->ik", implicit output, "..." and repeated subscripts).
KILN_API Tensor einsum(const std::string& equation, const TensorList& operands);

}  // namespace kiln
