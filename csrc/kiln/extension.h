#pragma once
// The one header an extension includes: tensors, every op, the dispatcher's
// dtype helpers, parallel loops and KILN_LIBRARY. No Python, no pybind11, so an
// extension compiles in seconds (see kiln.utils.cpp_extension).
#include <cmath>

#include "kiln/dtype_dispatch.h"
#include "kiln/error.h"
#include "kiln/library.h"
#include "kiln/ops.h"
#include "kiln/parallel.h"
