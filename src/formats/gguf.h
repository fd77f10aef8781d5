// GGUF, llama.cpp's model file (version 3; version 2 has the same layout and is read too):
//   "GGUF", u32 version, i64 tensor count, i64 metadata count,
//   metadata: (string key, u32 type, value)...   strings are u64 length + UTF-8 bytes,
//             arrays are u32 element type + u64 count + elements (arrays may nest),
//   tensor infos: (string name, u32 n_dims, i64 ne[n_dims], u32 ggml type, u64 offset)...,
//   padding to the alignment (metadata general.alignment, a u32 power of two, default 32),
//   the data section: every tensor at its offset, each one padded to the alignment.
// ne[0] is the fastest-varying dimension: a PyTorch [rows, cols] weight is ne = [cols, rows].
//
// The reader maps the file and checks it as llama.cpp's gguf.cpp does, before anything is
// used: the magic and version, counts and lengths against the bytes left (so hostile
// values cannot make it allocate or read past the end), known value and tensor types,
// no empty or repeated keys or tensor names, names under 64 bytes, at most 4 dimensions,
// element counts that fit in int64, rows a whole number of blocks, offsets aligned and
// packed in file order (llama.cpp's rule), every tensor's bytes inside the file.
// Errors name the file and the key or tensor at fault.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "base/mapped_file.h"
#include "tensor/dtype.h"

namespace dsv3 {

// Metadata value types, numbered as in the file.
enum class GgufType : uint32_t {
  Uint8 = 0, Int8 = 1, Uint16 = 2, Int16 = 3, Uint32 = 4, Int32 = 5, Float32 = 6, Bool = 7,
  String = 8, Array = 9, Uint64 = 10, Int64 = 11, Float64 = 12,
};

struct GgufValue {
  GgufType type = GgufType::Uint8;
  uint64_t bits = 0;               // numbers and bools: the value's bytes, zero-extended
  std::string string;              // String
  GgufType element_type = GgufType::Uint8;  // Array
  std::vector<GgufValue> elements;          // Array

  // A scalar of any type from its stored bytes (zero-extended), and the common cases.
  static GgufValue scalar(GgufType type, uint64_t bits);
  static GgufValue u32(uint32_t v) { return scalar(GgufType::Uint32, v); }
  static GgufValue i32(int32_t v) { return scalar(GgufType::Int32, static_cast<uint32_t>(v)); }
  static GgufValue f32(float v);
  static GgufValue boolean(bool v) { return scalar(GgufType::Bool, v ? 1 : 0); }
  static GgufValue str(std::string v);
  static GgufValue array(GgufType element_type, std::vector<GgufValue> elements);

  // Typed reads; a value of another type is an error naming `where`.
  int64_t as_int(const std::string& where) const;  // any integer type that fits int64
  double as_float(const std::string& where) const;  // Float32 or Float64
  bool as_bool(const std::string& where) const;
  const std::string& as_string(const std::string& where) const;
  const std::vector<GgufValue>& as_array(GgufType element_type, const std::string& where) const;

  bool operator==(const GgufValue&) const = default;
};

std::string_view gguf_type_name(GgufType type);

inline constexpr uint32_t kGgufDefaultAlignment = 32;
inline constexpr size_t kGgufMaxNameBytes = 63;  // llama.cpp's GGML_MAX_NAME less the NUL
inline constexpr uint32_t kGgufMaxDims = 4;

// ggml type ids of the dtypes dsv3 reads and writes (F32, F16, BF16, Q8_0, Q4_K, Q6_K).
uint32_t ggml_type_id(DType dtype);

struct GgufTensor {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> ne;     // ne[0] fastest
  uint64_t offset = 0;         // from the start of the data section
  const uint8_t* data = nullptr;
  size_t nbytes = 0;

  int64_t numel() const;
};

class GgufFile {
 public:
  explicit GgufFile(const std::string& path);
  GgufFile(const GgufFile&) = delete;  // tensors point into the map
  GgufFile& operator=(const GgufFile&) = delete;

  const std::string& path() const { return file_.path(); }
  uint32_t version() const { return version_; }
  uint32_t alignment() const { return alignment_; }
  size_t data_offset() const { return data_offset_; }
  size_t file_size() const { return file_.size(); }

  // In file order.
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return metadata_; }
  const std::vector<GgufTensor>& tensors() const { return tensors_; }

  const GgufValue* find(const std::string& key) const;
  const GgufValue& get(const std::string& key) const;  // missing: an error naming key and file
  const GgufTensor* find_tensor(const std::string& name) const;
  const GgufTensor& tensor(const std::string& name) const;

 private:
  MappedFile file_;
  uint32_t version_ = 0;
  uint32_t alignment_ = kGgufDefaultAlignment;
  size_t data_offset_ = 0;
  std::vector<std::pair<std::string, GgufValue>> metadata_;
  std::unordered_map<std::string, size_t> metadata_index_;
  std::vector<GgufTensor> tensors_;
  std::unordered_map<std::string, size_t> tensor_index_;
  // Element tensors whose bytes are not aligned to their element size (only possible with
  // general.alignment below 4) are copied here, so kernels may read them as typed arrays.
  std::vector<std::unique_ptr<uint8_t[]>> aligned_copies_;
};

struct GgufTensorToWrite {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> ne;      // ne[0] fastest
  const void* data = nullptr;   // dtype_row_bytes(dtype, ne[0]) * ne[1] * ... bytes
};

// Writes a GGUF version 3 file atomically (see AtomicFileWriter): metadata and tensors in
// the order given, tensors packed at general.alignment (when the metadata sets it) or 32.
// Refuses what the reader would refuse (repeated names, bad shapes, a bad alignment value).
void write_gguf(const std::string& path, const std::vector<std::pair<std::string, GgufValue>>& metadata,
                const std::vector<GgufTensorToWrite>& tensors);

}  // namespace dsv3
