"""Compilers, flags and the ninja build behind kiln.utils.cpp_extension."""

import functools
import glob
import hashlib
import os
import shlex
import shutil
import subprocess
import sys

import kiln

_KILN_DIR = os.path.dirname(os.path.abspath(kiln.__file__))


class BuildError(RuntimeError):
    """A failed extension build; the message starts with the compiler's own lines."""


def _kiln_include_dir():
    installed = os.path.join(_KILN_DIR, "include")
    if os.path.isdir(installed):
        return installed
    # A development tree (tools/dev-build): the headers are the sources themselves.
    return os.path.normpath(os.path.join(_KILN_DIR, "..", "..", "csrc"))


def include_paths(cuda=False):
    """Include directories an extension needs (kiln's headers; CUDA's with cuda=True)."""
    paths = [_kiln_include_dir()]
    if cuda:
        paths.append(os.path.join(_cuda_home(find_nvcc(required=True)), "include"))
    return paths


def library_paths(cuda=False):
    """Library directories an extension links from (libkiln's; CUDA's with cuda=True)."""
    paths = [_KILN_DIR]
    if cuda:
        paths.append(os.path.join(_cuda_home(find_nvcc(required=True)), "lib64"))
    return paths


def kiln_build_id():
    """Identifies the libkiln build in use: a rebuilt or upgraded kiln rebuilds extensions."""
    lib = os.path.realpath(os.path.join(_KILN_DIR, "libkiln.so"))
    st = os.stat(lib)
    return f"{lib}:{st.st_size}:{st.st_mtime_ns}"


def _nvcc_candidates():
    """$CUDA_HOME (or $CUDA_PATH), PATH, /usr/local/cuda, then /usr/local/cuda-* newest first."""
    candidates = [os.path.join(os.environ[v], "bin", "nvcc")
                  for v in ("CUDA_HOME", "CUDA_PATH") if os.environ.get(v)]
    candidates += [shutil.which("nvcc"), "/usr/local/cuda/bin/nvcc"]
    return candidates + sorted(glob.glob("/usr/local/cuda-*/bin/nvcc"), reverse=True)


def find_nvcc(required=False):
    """The nvcc to build CUDA sources with (None, or an error when required, if none)."""
    for c in _nvcc_candidates():
        # The toolkit around nvcc must have CUDA's headers (skips wrapper scripts on PATH).
        if c and os.access(c, os.X_OK) and os.path.isfile(
                os.path.join(_cuda_home(c), "include", "cuda_runtime.h")):
            return c
    if required:
        raise RuntimeError(
            "[cpp_extension] CUDA sources need nvcc, the CUDA compiler, which was not found "
            "($CUDA_HOME/bin/nvcc, nvcc on PATH, /usr/local/cuda*/bin/nvcc); install the CUDA "
            "toolkit or set CUDA_HOME")
    return None


def _cuda_home(nvcc):
    return os.path.dirname(os.path.dirname(os.path.realpath(nvcc)))


def _find_ninja():
    found = shutil.which("ninja")
    if found:
        return found
    try:
        import ninja  # the pip package ships the binary

        return os.path.join(ninja.BIN_DIR, "ninja")
    except ImportError:
        raise RuntimeError(
            "[cpp_extension] building extensions needs ninja, which was not found on PATH; "
            "install it with `pip install ninja`") from None


@functools.cache
def _version(path, mtime_ns):
    del mtime_ns  # part of the cache key: a replaced compiler is asked again
    proc = subprocess.run([path, "--version"], capture_output=True, text=True, check=False)
    return proc.stdout.strip()


class Tools:
    def __init__(self, cxx, ninja, nvcc):
        self.cxx, self.ninja, self.nvcc = cxx, ninja, nvcc

    def identity(self):
        """The compilers' paths and versions: a different compiler gets a different build."""
        parts = []
        for tool in (self.cxx, self.nvcc):
            if tool:
                real = os.path.realpath(tool)
                parts.append(f"{real}\n{_version(real, os.stat(real).st_mtime_ns)}")
        return "\n".join(parts)


def find(with_cuda):
    """The C++ compiler ($CXX or c++), ninja, and nvcc when with_cuda; says what is missing."""
    cxx_name = os.environ.get("CXX", "c++")
    cxx = shutil.which(cxx_name)
    if cxx is None:
        raise RuntimeError(
            f"[cpp_extension] no C++ compiler: '{cxx_name}' was not found on PATH; install g++ "
            "or clang++, or set CXX to the compiler's path")
    return Tools(cxx, _find_ninja(), find_nvcc(required=True) if with_cuda else None)


class Commands:
    """Compile and link flags of one extension."""

    def __init__(self, name, tools, with_cuda, extra_cflags, extra_cuda_cflags, extra_ldflags,
                 extra_include_paths):
        self.tools = tools
        # The kiln build is part of every compile command, so a new kiln recompiles
        # everything (ninja alone would only relink when the headers look unchanged).
        tag = hashlib.sha256(f"{kiln.__version__}:{kiln_build_id()}".encode()).hexdigest()[:16]
        defines = [f"-DKILN_EXTENSION_NAME={name}", f"-DKILN_BUILD_TAG={tag}"]
        defines += ["-DKILN_WITH_CUDA"] if with_cuda else []
        includes = [f"-I{p}" for p in [*extra_include_paths, *include_paths(with_cuda)]]
        self.cflags = ["-std=c++20", "-fPIC", "-O2", "-fvisibility=hidden", "-fopenmp",
                       *defines, *includes, *extra_cflags]
        self.cuda_cflags = ["-std=c++20", "-O2", "-ccbin", tools.cxx,
                            "-Xcompiler", "-fPIC,-fvisibility=hidden", *defines, *includes,
                            *extra_cuda_cflags]
        self.ldflags = ["-shared", "-fopenmp"]
        for d in library_paths(with_cuda):
            self.ldflags += [f"-L{d}", f"-Wl,-rpath,{d}"]
        self.ldflags += ["-lkiln", *(["-lcudart"] if with_cuda else []), *extra_ldflags]

    def flags(self):
        return [shlex.join(self.cflags), shlex.join(self.cuda_cflags), shlex.join(self.ldflags)]


def _escape(path):
    return path.replace("$", "$$").replace(" ", "$ ").replace(":", "$:")


def _ninja_file(sources, cmd, output):
    lines = [
        "ninja_required_version = 1.3",
        f"cxx = {shlex.quote(cmd.tools.cxx)}",
        f"cflags = {shlex.join(cmd.cflags)}",
        f"ldflags = {shlex.join(cmd.ldflags)}",
        "rule compile",
        "  command = $cxx -MMD -MF $out.d $cflags -c $in -o $out",
        "  depfile = $out.d",
        "  deps = gcc",
        "rule link",
        "  command = $cxx $in $ldflags -o $out",
    ]
    if cmd.tools.nvcc:
        lines += [
            f"nvcc = {shlex.quote(cmd.tools.nvcc)}",
            f"cuda_cflags = {shlex.join(cmd.cuda_cflags)}",
            "rule cuda_compile",
            "  command = $nvcc -MD -MF $out.d $cuda_cflags -c $in -o $out",
            "  depfile = $out.d",
            "  deps = gcc",
        ]
    objects = []
    for i, src in enumerate(sources):
        stem = os.path.splitext(os.path.basename(src))[0]
        is_cuda = src.endswith(".cu")
        obj = f"{i}_{stem}{'.cuda' if is_cuda else ''}.o"
        rule = "cuda_compile" if is_cuda else "compile"
        lines.append(f"build {_escape(obj)}: {rule} {_escape(src)}")
        objects.append(_escape(obj))
    lines.append(f"build {_escape(output)}: link {' '.join(objects)}")
    lines.append(f"default {_escape(output)}")
    return "\n".join(lines) + "\n"


def _compiler_lines(log):
    """The compiler's own output of each failed ninja step, without ninja's lines."""
    out, lines, i = [], log.splitlines(), 0
    while i < len(lines):
        if lines[i].startswith("FAILED: "):
            i += 2  # ninja echoes the failed command after the FAILED line
            while i < len(lines) and not lines[i].startswith(("FAILED: ", "ninja: ")) and not (
                    lines[i].startswith("[") and "/" in lines[i].split("]")[0]):
                out.append(lines[i])
                i += 1
        else:
            i += 1
    return "\n".join(out).strip()


def build(name, sources, cmd, build_dir, library, verbose):
    """Builds `library` with ninja in `build_dir`; raises BuildError with the compiler's message."""
    tmp = f"{name}.tmp.so"
    with open(os.path.join(build_dir, "build.ninja"), "w") as f:
        f.write(_ninja_file(sources, cmd, tmp))
    args = [cmd.tools.ninja, "-C", build_dir] + (["-v"] if verbose else [])
    if os.environ.get("MAX_JOBS"):
        args += ["-j", os.environ["MAX_JOBS"]]
    proc = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          check=False)
    log_path = os.path.join(build_dir, "build.log")
    with open(log_path, "w") as f:
        f.write(proc.stdout)
    if verbose:
        sys.stdout.write(proc.stdout)
    if proc.returncode != 0:
        message = _compiler_lines(proc.stdout) or proc.stdout.strip()
        raise BuildError(f"{message}\n\n[cpp_extension] building extension '{name}' failed "
                         f"(full log: {log_path})")
    os.replace(os.path.join(build_dir, tmp), library)
