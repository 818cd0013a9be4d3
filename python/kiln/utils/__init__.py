"""Utilities: kiln.utils.tensorboard, kiln.utils.checkpoint, kiln.utils.cpp_extension."""

import os as _os

# For CMake projects that build against kiln: find_package(Kiln CONFIG) finds it here
# (``cmake -DCMAKE_PREFIX_PATH=$(python -c "import kiln.utils; print(kiln.utils.cmake_prefix_path)")``).
cmake_prefix_path = _os.path.join(_os.path.dirname(_os.path.dirname(__file__)), "share", "cmake")
