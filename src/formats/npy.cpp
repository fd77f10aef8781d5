#include "formats/npy.h"

#include "base/atomic_file.h"

namespace dsv3 {

void write_npy_f32(const std::string& path, const float* data, const std::vector<int64_t>& shape) {
  std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (";
  int64_t count = 1;
  for (int64_t d : shape) {
    dict += std::to_string(d) + ", ";
    count *= d;
  }
  if (shape.size() > 1) dict.resize(dict.size() - 1);  // "(3, 4)" but "(3,)"
  dict += "), }";
  // Preamble (10 bytes) + dict + padding + '\n' must be a multiple of 64 bytes.
  const size_t total = 10 + dict.size() + 1;
  dict.append((64 - total % 64) % 64, ' ');
  dict += '\n';

  std::string preamble = "\x93NUMPY";
  preamble += '\x01';
  preamble += '\x00';
  preamble += static_cast<char>(dict.size() & 0xff);
  preamble += static_cast<char>(dict.size() >> 8);

  AtomicFileWriter out(path);
  out.write(preamble.data(), preamble.size());
  out.write(dict.data(), dict.size());
  out.write(data, static_cast<size_t>(count) * sizeof(float));
  out.commit();
}

}  // namespace dsv3
