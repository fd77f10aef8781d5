// safetensors: 8-byte little-endian header length N, N bytes of JSON describing each
// tensor (dtype, shape, data_offsets relative to the data area), then the data.
//
// Written by hand rather than taken from a library: Debian packages no C++ safetensors
// reader, and loading is the heart of the project (mmap, strict validation, FP8 scales).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/mapped_file.h"
#include "tensor/dtype.h"
#include "tensor/matrix.h"

namespace dsv3 {

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;  // inside the mapped file (or an aligned copy, see below)
  size_t nbytes = 0;
  const std::string* file = nullptr;  // path of the file holding it, for error messages
  std::unique_ptr<Fp8NanScan> nan_scan;  // F8_E4M3 only: for the kernels (tensor/matrix.h)

  int64_t numel() const;
};

// Largest header accepted; the reference implementation uses the same bound.
inline constexpr uint64_t kMaxSafetensorsHeader = 100ull << 20;

// One mapped .safetensors file, validated as a whole when opened: header length within
// the file and kMaxSafetensorsHeader, JSON well-formed, known dtypes, shapes whose size
// matches the byte range, ranges inside the data area and not overlapping.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);
  SafetensorsFile(const SafetensorsFile&) = delete;  // TensorInfo points into it
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return file_.path(); }
  const std::map<std::string, TensorInfo>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  size_t file_size() const { return file_.size(); }

 private:
  MappedFile file_;
  std::map<std::string, TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
  // Tensors whose bytes are not aligned to their element size in the file are copied
  // here once, so kernels may read them as typed arrays.
  std::vector<std::unique_ptr<uint8_t[]>> aligned_copies_;
};

struct TensorToWrite {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const void* data = nullptr;  // product(shape) elements of dtype
};

// Writes tensors in the order the Hugging Face library expects (contiguous, larger
// element sizes first so every tensor is aligned), atomically (see AtomicFileWriter).
void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace dsv3
