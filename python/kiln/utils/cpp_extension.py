"""Build C++/CUDA extensions just in time: ``load`` and ``load_inline`` (PyTorch's API).

An extension is a plain shared library linked against libkiln: its ``KILN_LIBRARY``
blocks register ops with kiln's dispatcher when it loads, and kiln's own bindings
call them (``kiln.ops.<namespace>.<op>``), so extensions include neither Python nor
pybind11 and compile in seconds. Builds run ninja (in parallel, ``MAX_JOBS`` caps
the jobs) in a build directory per extension; a build is keyed by a hash of the
sources, flags, compiler and kiln build, so unchanged code loads the cached library
without running a compiler, and a new compiler or kiln rebuilds. A file lock keeps
concurrent loads from several processes from colliding.
"""

import fcntl
import hashlib
import os
import re
import types

import kiln
from kiln.ops import load_library
from kiln.utils import _cpp_toolchain as toolchain
from kiln.utils._cpp_toolchain import BuildError, include_paths, library_paths

__all__ = [
    "BuildError",
    "get_default_build_root",
    "include_paths",
    "library_paths",
    "load",
    "load_inline",
]


def get_default_build_root():
    """Where extensions build unless ``build_directory`` is given (``KILN_EXTENSIONS_DIR``)."""
    root = os.environ.get("KILN_EXTENSIONS_DIR")
    if root:
        return os.path.realpath(root)
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "kiln_extensions")


def load(name, sources, extra_cflags=None, extra_cuda_cflags=None, extra_ldflags=None,
         extra_include_paths=None, build_directory=None, verbose=False, with_cuda=None,
         is_python_module=True, keep_intermediates=True):
    """Compiles ``sources`` (.cpp/.cc/.cu files) into a shared library and loads it.

    Returns a module whose attributes are the ops the library registered (with
    ``is_python_module=False``: loads it and returns None). ``with_cuda=None`` means
    "if any source is a .cu file".
    """
    del keep_intermediates  # object files always stay: they make rebuilds incremental
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    sources = [os.path.realpath(os.fspath(s)) for s in sources]
    for s in sources:
        if not os.path.isfile(s):
            raise FileNotFoundError(f"[cpp_extension.load] no such source file: {s}")
    contents = {}
    for s in sources:
        with open(s, "rb") as f:
            contents[s] = f.read()
    return _build_and_load(name, sources, contents, None, extra_cflags, extra_cuda_cflags,
                           extra_ldflags, extra_include_paths, build_directory, verbose,
                           with_cuda, is_python_module)


def load_inline(name, cpp_sources, cuda_sources=None, functions=None, extra_cflags=None,
                extra_cuda_cflags=None, extra_ldflags=None, extra_include_paths=None,
                build_directory=None, verbose=False, with_cuda=None, is_python_module=True,
                keep_intermediates=True):
    """Like ``load`` with the sources given as strings.

    Every source sees ``kiln/extension.h`` (included by a compiler flag, so compiler
    messages give the lines of the strings as written). Each function named
    in ``functions`` (a list of names, or a dict of name -> docstring) is registered
    as op ``<name>::<function>`` and becomes an attribute of the returned module; ops
    with a backward are defined in the sources' own ``KILN_LIBRARY(<name>, m)`` block.
    """
    del keep_intermediates
    _check_name(name)
    cpp_sources = [cpp_sources] if isinstance(cpp_sources, str) else list(cpp_sources)
    cuda_sources = [cuda_sources] if isinstance(cuda_sources, str) else list(cuda_sources or [])
    if isinstance(functions, str):
        functions = [functions]
    cpp = "\n".join(cpp_sources)
    if functions:
        defs = "".join(f'  m.def("{f}", {f});\n' for f in functions)
        cpp += f"\n\nKILN_LIBRARY({name}, m) {{\n{defs}}}\n"
    build_dir = _build_dir(name, build_directory)
    contents = {os.path.join(build_dir, "main.cpp"): cpp.encode()}
    if cuda_sources:
        contents[os.path.join(build_dir, "cuda.cu")] = "\n".join(cuda_sources).encode()
    prelude = ["-include", "kiln/extension.h"]
    return _build_and_load(name, list(contents), contents, build_dir,
                           prelude + list(extra_cflags or []),
                           prelude + list(extra_cuda_cflags or []), extra_ldflags,
                           extra_include_paths, build_dir, verbose, with_cuda, is_python_module)


def _check_name(name):
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name or ""):
        raise ValueError(f"[cpp_extension] extension name must be an identifier, got {name!r}")


def _build_dir(name, build_directory):
    path = build_directory or os.path.join(get_default_build_root(), name)
    os.makedirs(path, exist_ok=True)
    return os.path.realpath(path)


def _build_and_load(name, sources, contents, inline_dir, extra_cflags, extra_cuda_cflags,
                    extra_ldflags, extra_include_paths, build_directory, verbose, with_cuda,
                    is_python_module):
    _check_name(name)
    if with_cuda is None:
        with_cuda = any(s.endswith((".cu", ".cuh")) for s in sources)
    tools = toolchain.find(with_cuda)
    cmd = toolchain.Commands(name, tools, with_cuda, list(extra_cflags or []),
                             list(extra_cuda_cflags or []), list(extra_ldflags or []),
                             list(extra_include_paths or []))
    key = _build_key(tools, cmd, contents)
    build_dir = _build_dir(name, build_directory)
    library = os.path.join(build_dir, f"{name}_{key[:16]}.so")
    if not os.path.exists(library):  # the cached library appears atomically (rename)
        with _file_lock(os.path.join(build_dir, ".lock")):
            if not os.path.exists(library):
                if inline_dir:
                    for path, data in contents.items():
                        _write_if_changed(path, data)
                toolchain.build(name, sources, cmd, build_dir, library, verbose)
                _remove_stale(build_dir, name, library)
    elif verbose:
        print(f"[cpp_extension] loading cached extension '{name}' from {library}")
    defined = load_library(library)
    if not is_python_module:
        return None
    module = types.ModuleType(name)
    module.__file__ = library
    for qualified in defined:
        namespace, op = qualified.split("::", 1)
        setattr(module, op, getattr(getattr(kiln.ops, namespace), op))
    return module


def _build_key(tools, cmd, contents):
    h = hashlib.sha256()
    for part in (tools.identity(), *cmd.flags()):  # the flags name the kiln build
        h.update(part.encode() + b"\0")
    for path in sorted(contents):
        h.update(os.path.basename(path).encode() + b"\0" + contents[path] + b"\0")
    return h.hexdigest()


class _file_lock:
    """An exclusive lock on a file (held by one process; released if it dies)."""

    def __init__(self, path):
        self.path = path

    def __enter__(self):
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def _write_if_changed(path, data):
    try:
        with open(path, "rb") as f:
            if f.read() == data:
                return
    except FileNotFoundError:
        pass
    with open(path, "wb") as f:
        f.write(data)


def _remove_stale(build_dir, name, keep):
    """Drops libraries of older versions of this extension (loaded copies keep working)."""
    pattern = re.compile(re.escape(name) + r"_[0-9a-f]{16}\.so")
    for entry in os.listdir(build_dir):
        path = os.path.join(build_dir, entry)
        if pattern.fullmatch(entry) and path != keep:
            try:
                os.remove(path)
            except OSError:
                pass
