#pragma once
// Filling a table of typed function pointers from a library opened with dlopen
// (cuBLAS, cuDNN: loaded on first use, so kiln._C_cuda imports without them).
#include <dlfcn.h>

#include <string>

namespace kiln::cuda {

// fn = the symbol `name` of `lib`; when it is missing, appends the name to `missing`.
template <class Fn>
void resolve_symbol(void* lib, const char* name, Fn& fn, std::string& missing) {
  fn = reinterpret_cast<Fn>(dlsym(lib, name));
  if (!fn) missing += std::string(missing.empty() ? "" : ", ") + name;
}

}  // namespace kiln::cuda
