#pragma once
// Every op as a free function, grouped by family. Each op checks its
// arguments (errors start with "[op]"), infers the output, calls its kernel
// through the dispatcher and records autograd history when needed.
#include "kiln/ops/copy.h"
#include "kiln/ops/creation.h"
#include "kiln/ops/activation.h"
#include "kiln/ops/binary.h"
#include "kiln/ops/elementwise.h"
#include "kiln/ops/pointwise.h"
#include "kiln/ops/promotion.h"
#include "kiln/ops/reduce.h"
#include "kiln/ops/unary.h"
#include "kiln/ops/view.h"
