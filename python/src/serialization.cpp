// Fast paths for kiln.save / kiln.load (python/kiln/serialization): a zlib-compatible
// CRC-32, and parallel pread into many buffers that checksums each piece while it is
// still in cache. Both release the GIL.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "kiln/error.h"
#include "kiln/io/crc32.h"
#include "kiln/parallel.h"
#include "module.h"

namespace py = pybind11;

namespace kiln::python {
namespace {

// Bytes per pread: small enough to still be in L2 when hashed.
constexpr size_t kChunk = 256 << 10;

struct ReadError {
  std::mutex mutex;
  int err = 0;                // errno of a failed pread, 0 if none
  int64_t truncated_at = -1;  // file offset where the file ended early, -1 if not
  std::atomic<bool> failed{false};  // either happened: other threads stop
};

// Fills buf[0, n) from file offset `offset`, returning the CRC-32 of those bytes when
// `hash` (each chunk is hashed right after it arrived, while in cache). Returns early
// on error.
uint32_t read_piece(int fd, int64_t offset, uint8_t* buf, int64_t n, bool hash,
                    ReadError& error) {
  uint32_t crc = 0;
  for (int64_t pos = 0; pos < n;) {
    const size_t want = std::min<size_t>(kChunk, static_cast<size_t>(n - pos));
    const ssize_t got = ::pread(fd, buf + pos, want, offset + pos);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      std::lock_guard<std::mutex> lock(error.mutex);
      if (got < 0) error.err = errno;
      else if (error.truncated_at < 0 || offset + pos < error.truncated_at)
        error.truncated_at = offset + pos;
      error.failed = true;
      return crc;
    }
    if (hash) crc = io::crc32(crc, buf + pos, static_cast<size_t>(got));
    pos += got;
  }
  return crc;
}
py::object read_pieces(int fd, const std::vector<std::pair<py::buffer, int64_t>>& pieces,
                       bool hash) {
  std::vector<py::buffer_info> bufs;
  bufs.reserve(pieces.size());
  for (const auto& [buffer, offset] : pieces) {
    bufs.push_back(buffer.request(/*writable=*/true));
    KILN_CHECK(PyBuffer_IsContiguous(bufs.back().view(), 'C') && offset >= 0, ValueError,
               "[kiln.load] expected contiguous writable buffers and offsets >= 0");
  }
  std::vector<uint32_t> crcs(pieces.size());
  ReadError error;
  {
    py::gil_scoped_release release;
    std::atomic<size_t> next{0};
    auto work = [&] {
      for (size_t i; (i = next.fetch_add(1)) < pieces.size();) {
        crcs[i] = read_piece(fd, pieces[i].second, static_cast<uint8_t*>(bufs[i].ptr),
                             bufs[i].size * bufs[i].itemsize, hash, error);
        if (error.failed) return;
      }
    };
    // At least 4 threads even on fewer cores: much of the time goes to faulting in fresh
    // pages and the kernel's copies, which overlap past the core count (on a 2-core VM,
    // loading 500 MB in a fresh process: 4 threads ~1.3x faster than 2, 2 ~1.4x than 1).
    const int nthreads =
        static_cast<int>(std::min<size_t>(std::clamp(get_num_threads(), 4, 8), pieces.size()));
    std::vector<std::thread> threads;
    for (int t = 1; t < nthreads; ++t) threads.emplace_back(work);
    work();
    for (auto& t : threads) t.join();
  }
  if (error.err) {
    errno = error.err;
    PyErr_SetFromErrno(PyExc_OSError);
    throw py::error_already_set();
  }
  KILN_CHECK(error.truncated_at < 0, ValueError, "file ended at byte ", error.truncated_at,
             " before the data it promised (truncated?)");
  if (!hash) return py::none();
  py::list out(crcs.size());
  for (size_t i = 0; i < crcs.size(); ++i) out[i] = py::int_(crcs[i]);
  return out;
}

uint32_t crc32(const py::buffer& data, uint32_t value) {
  py::buffer_info info = data.request();
  KILN_CHECK(PyBuffer_IsContiguous(info.view(), 'C'), ValueError,
             "[crc32] expected a contiguous buffer");
  const size_t n = static_cast<size_t>(info.size * info.itemsize);
  py::gil_scoped_release release;
  return io::crc32(value, info.ptr, n);
}

// Asks the kernel to start writing [offset, offset + nbytes) of fd to disk now, without
// waiting: the fsync that ends an atomic save then has little left to do (a 500 MB save
// went from 0.20 to 0.13 s). Only a hint, so failures and other platforms are ignored.
void start_writeback(int fd, int64_t offset, int64_t nbytes) {
#ifdef __linux__
  py::gil_scoped_release release;
  (void)sync_file_range(fd, offset, nbytes, SYNC_FILE_RANGE_WRITE);
#else
  (void)fd, (void)offset, (void)nbytes;
#endif
}

}  // namespace

void init_serialization(py::module_& m) {
  m.def("_crc32", &crc32, py::arg("data"), py::arg("value") = 0,
        "zlib.crc32(data, value), computed with carry-less multiplication where available");
  m.def("_read_pieces", &read_pieces, py::arg("fd"), py::arg("pieces"), py::arg("hash"),
        "For each (buffer, file offset) of pieces, fill the buffer from the file, in "
        "threads; returns each piece's CRC-32 when hash, else None");
  m.def("_start_writeback", &start_writeback, py::arg("fd"), py::arg("offset"),
        py::arg("nbytes"), "Start writing a byte range of fd to disk (a hint; no waiting)");
}

}  // namespace kiln::python
