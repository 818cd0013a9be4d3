#pragma once
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "kiln/macros.h"

namespace kiln {

// Every user-facing error derives from Error; the bindings map each subclass
// to the Python exception of the same name (Error itself to RuntimeError).
class KILN_API Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
class KILN_API ValueError : public Error {
 public:
  using Error::Error;
};
class KILN_API TypeError : public Error {
 public:
  using Error::Error;
};
class KILN_API IndexError : public Error {
 public:
  using Error::Error;
};
class KILN_API NotImplementedError : public Error {
 public:
  using Error::Error;
};

namespace detail {
inline void stream_one(std::ostringstream& ss, const std::vector<int64_t>& v) {
  ss << '[';
  for (size_t i = 0; i < v.size(); ++i) ss << (i ? ", " : "") << v[i];
  ss << ']';
}
template <class T>
inline void stream_one(std::ostringstream& ss, const T& v) {
  ss << v;
}
template <class... Args>
std::string concat(const Args&... args) {
  std::ostringstream ss;
  (stream_one(ss, args), ...);
  return ss.str();
}
}  // namespace detail

}  // namespace kiln

// KILN_CHECK(cond, ValueError, "[op] message ", value, ...): throws kiln::ValueError.
#define KILN_CHECK(cond, ErrorType, ...) \
  do {                                   \
    if (!(cond)) [[unlikely]]            \
      throw ::kiln::ErrorType(::kiln::detail::concat(__VA_ARGS__)); \
  } while (0)
