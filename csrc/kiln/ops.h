#pragma once
// Every op as a free function, grouped by family. Each op checks its
// arguments (errors start with "[op]"), infers the output, calls its kernel
// through the dispatcher and records autograd history when needed.
#include "kiln/ops/copy.h"
#include "kiln/ops/creation.h"
#include "kiln/ops/dropout.h"
#include "kiln/ops/elementwise.h"
#include "kiln/ops/embedding.h"
#include "kiln/ops/gather.h"
#include "kiln/ops/index.h"
#include "kiln/ops/indexing.h"
#include "kiln/ops/join.h"
#include "kiln/ops/linalg.h"
#include "kiln/ops/loss.h"
#include "kiln/ops/norm.h"
#include "kiln/ops/promotion.h"
#include "kiln/ops/random.h"
#include "kiln/ops/range.h"
#include "kiln/ops/reduce.h"
#include "kiln/ops/shape.h"
#include "kiln/ops/sort.h"
#include "kiln/ops/view.h"
