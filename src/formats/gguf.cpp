#include "formats/gguf.h"

#include <array>
#include <cstring>
#include <limits>
#include <optional>

#include "base/atomic_file.h"
#include "base/error.h"

namespace dsv3 {

namespace {

constexpr char kMagic[4] = {'G', 'G', 'U', 'F'};
constexpr uint32_t kVersion = 3;
// llama.cpp's bounds on one string and one array (GGUF_MAX_STRING_LENGTH, _ARRAY_ELEMENTS).
constexpr uint64_t kMaxStringBytes = 1ull << 30;
constexpr uint64_t kMaxArrayElements = 1ull << 30;
// Arrays of arrays are legal GGUF; the bound keeps hostile nesting from exhausting the stack.
constexpr int kMaxArrayDepth = 16;

// ggml's type names by id, for messages about the types dsv3 does not read ("" = unused id).
constexpr std::array<const char*, 43> kGgmlTypeNames = {
    "F32",  "F16",   "Q4_0",  "Q4_1",  "",     "",      "Q5_0",    "Q5_1",   "Q8_0",   "Q8_1",  "Q2_K",
    "Q3_K", "Q4_K",  "Q5_K",  "Q6_K",  "Q8_K", "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ4_NL", "IQ3_S",
    "IQ2_S", "IQ4_XS", "I8",  "I16",   "I32",  "I64",   "F64",     "IQ1_M",  "BF16",   "",      "",
    "",     "TQ1_0", "TQ2_0", "",      "",     "",      "MXFP4",   "NVFP4",  "Q1_0",   "Q2_0"};

constexpr std::array<DType, 6> kGgufDtypes = {DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q4_K, DType::Q6_K};

size_t scalar_size(GgufType type) {
  switch (type) {
    case GgufType::Uint8:
    case GgufType::Int8:
    case GgufType::Bool: return 1;
    case GgufType::Uint16:
    case GgufType::Int16: return 2;
    case GgufType::Uint32:
    case GgufType::Int32:
    case GgufType::Float32: return 4;
    case GgufType::Uint64:
    case GgufType::Int64:
    case GgufType::Float64: return 8;
    case GgufType::String:
    case GgufType::Array: return 0;
  }
  return 0;
}

// The fewest bytes one value of the type takes in a file: bounds counts by the bytes left.
size_t min_encoded_size(GgufType type) {
  if (type == GgufType::String) return 8;
  if (type == GgufType::Array) return 12;
  return scalar_size(type);
}

bool is_integer(GgufType type) {
  switch (type) {
    case GgufType::Uint8:
    case GgufType::Int8:
    case GgufType::Uint16:
    case GgufType::Int16:
    case GgufType::Uint32:
    case GgufType::Int32:
    case GgufType::Uint64:
    case GgufType::Int64: return true;
    default: return false;
  }
}

bool is_signed(GgufType type) {
  return type == GgufType::Int8 || type == GgufType::Int16 || type == GgufType::Int32 || type == GgufType::Int64;
}

std::string ggml_type_description(uint32_t id) {
  if (id < kGgmlTypeNames.size() && *kGgmlTypeNames[id]) return std::to_string(id) + " (" + kGgmlTypeNames[id] + ")";
  return std::to_string(id) + " (unknown)";
}

std::optional<DType> dtype_of_ggml_type(uint32_t id) {
  for (DType d : kGgufDtypes)
    if (ggml_type_id(d) == id) return d;
  return std::nullopt;
}

std::string shape_string(const std::vector<int64_t>& ne) {
  std::string s = "[";
  for (size_t i = 0; i < ne.size(); ++i) s += (i ? ", " : "") + std::to_string(ne[i]);
  return s + "]";
}

uint64_t padded(uint64_t offset, uint64_t alignment) { return (offset + alignment - 1) / alignment * alignment; }

// Element count and byte size of a tensor shape in a dtype, or an error naming `where`.
std::pair<int64_t, uint64_t> checked_size(const std::vector<int64_t>& ne, DType dtype, const std::string& where) {
  int64_t count = 1;
  for (int64_t n : ne) {
    if (n < 0) fail("negative dimension in shape ", shape_string(ne), " (", where, ")");
    if (n != 0 && count > std::numeric_limits<int64_t>::max() / n)
      fail("element count of shape ", shape_string(ne), " overflows int64 (", where, ")");
    count *= n;
  }
  const int64_t block = dtype_block_values(dtype);
  const int64_t row = ne.empty() ? 1 : ne[0];
  if (row % block != 0)
    fail("rows of ", row, " values are not a whole number of ", dtype_name(dtype), " blocks of ", block, " (", where,
         ")");
  return {count, static_cast<uint64_t>(count / block) * dtype_size(dtype)};
}

// Reads the file front to back; every read checks the bytes left and names what it reads.
class Cursor {
 public:
  Cursor(const uint8_t* data, size_t size, const std::string& path) : data_(data), size_(size), path_(path) {}

  size_t position() const { return pos_; }
  size_t left() const { return size_ - pos_; }

  const uint8_t* take(uint64_t bytes, const std::string& what) {
    if (bytes > left())
      fail("file truncated: ", what, " needs ", bytes, " bytes at offset ", pos_, " but ", left(), " are left (",
           path_, ")");
    const uint8_t* p = data_ + pos_;
    pos_ += static_cast<size_t>(bytes);
    return p;
  }

  uint64_t uint(size_t bytes, const std::string& what) {
    const uint8_t* p = take(bytes, what);
    uint64_t v = 0;
    for (size_t i = bytes; i-- > 0;) v = (v << 8) | p[i];
    return v;
  }
  uint32_t u32(const std::string& what) { return static_cast<uint32_t>(uint(4, what)); }
  uint64_t u64(const std::string& what) { return uint(8, what); }

  std::string string(const std::string& what) {
    const uint64_t length = u64(what + " length");
    if (length > kMaxStringBytes)
      fail(what, " length ", length, " exceeds the ", kMaxStringBytes, "-byte limit (", path_, ")");
    const uint8_t* p = take(length, what);
    return std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(length));
  }

  // A count of items of at least `min_item_bytes` each: bounded by the bytes left.
  uint64_t count(uint64_t value, size_t min_item_bytes, const std::string& what) {
    if (value > left() / min_item_bytes)
      fail(what, " ", value, " is more than the ", left(), " bytes left can hold (", path_, ")");
    return value;
  }

  GgufType type(const std::string& what) {
    const uint32_t t = u32(what);
    if (t > static_cast<uint32_t>(GgufType::Float64)) fail(what, " ", t, " is not a GGUF value type (", path_, ")");
    return static_cast<GgufType>(t);
  }

  GgufValue value(GgufType type, const std::string& where, int depth) {
    if (type == GgufType::String) return GgufValue::str(string(where));
    if (type != GgufType::Array) return GgufValue::scalar(type, uint(scalar_size(type), where));
    if (depth >= kMaxArrayDepth) fail("arrays nested deeper than ", kMaxArrayDepth, " (", path_, ": ", where, ")");
    const GgufType element_type = this->type("array element type of " + where);
    const uint64_t n = u64("array length of " + where);
    if (n > kMaxArrayElements)
      fail("array length ", n, " exceeds the ", kMaxArrayElements, "-element limit (", path_, ": ", where, ")");
    count(n, min_encoded_size(element_type), "array length of " + where);
    std::vector<GgufValue> elements;
    elements.reserve(static_cast<size_t>(n));
    for (uint64_t i = 0; i < n; ++i)
      elements.push_back(value(element_type, where + "[" + std::to_string(i) + "]", depth + 1));
    return GgufValue::array(element_type, std::move(elements));
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  const std::string& path_;
};

}  // namespace

std::string_view gguf_type_name(GgufType type) {
  switch (type) {
    case GgufType::Uint8: return "uint8";
    case GgufType::Int8: return "int8";
    case GgufType::Uint16: return "uint16";
    case GgufType::Int16: return "int16";
    case GgufType::Uint32: return "uint32";
    case GgufType::Int32: return "int32";
    case GgufType::Float32: return "float32";
    case GgufType::Bool: return "bool";
    case GgufType::String: return "string";
    case GgufType::Array: return "array";
    case GgufType::Uint64: return "uint64";
    case GgufType::Int64: return "int64";
    case GgufType::Float64: return "float64";
  }
  return "?";
}

uint32_t ggml_type_id(DType dtype) {
  switch (dtype) {
    case DType::F32: return 0;
    case DType::F16: return 1;
    case DType::Q8_0: return 8;
    case DType::Q4_K: return 12;
    case DType::Q6_K: return 14;
    case DType::BF16: return 30;
    case DType::F8_E4M3: break;
  }
  fail("GGUF cannot hold ", dtype_name(dtype), " tensors");
}

// ------------------------------------------------------------------------------ values

GgufValue GgufValue::scalar(GgufType type, uint64_t bits) {
  GgufValue v;
  v.type = type;
  v.bits = bits;
  return v;
}

GgufValue GgufValue::f32(float value) { return scalar(GgufType::Float32, f32_to_bits(value)); }

GgufValue GgufValue::str(std::string value) {
  GgufValue v;
  v.type = GgufType::String;
  v.string = std::move(value);
  return v;
}

GgufValue GgufValue::array(GgufType element_type, std::vector<GgufValue> elements) {
  GgufValue v;
  v.type = GgufType::Array;
  v.element_type = element_type;
  v.elements = std::move(elements);
  return v;
}

int64_t GgufValue::as_int(const std::string& where) const {
  if (!is_integer(type)) fail("expected an integer, got ", gguf_type_name(type), " (", where, ")");
  if (!is_signed(type)) {
    if (bits > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) fail("integer ", bits, " is too large (", where, ")");
    return static_cast<int64_t>(bits);
  }
  const unsigned width = 8 * static_cast<unsigned>(scalar_size(type));
  const uint64_t sign = uint64_t{1} << (width - 1);
  const uint64_t extended = width == 64 ? bits : (bits ^ sign) - sign;  // sign-extend
  return static_cast<int64_t>(extended);
}

double GgufValue::as_float(const std::string& where) const {
  if (type == GgufType::Float32) return bits_to_f32(static_cast<uint32_t>(bits));
  if (type == GgufType::Float64) {
    double d;
    std::memcpy(&d, &bits, sizeof d);
    return d;
  }
  fail("expected a float, got ", gguf_type_name(type), " (", where, ")");
}

bool GgufValue::as_bool(const std::string& where) const {
  if (type != GgufType::Bool) fail("expected a bool, got ", gguf_type_name(type), " (", where, ")");
  return bits != 0;
}

const std::string& GgufValue::as_string(const std::string& where) const {
  if (type != GgufType::String) fail("expected a string, got ", gguf_type_name(type), " (", where, ")");
  return string;
}

const std::vector<GgufValue>& GgufValue::as_array(GgufType element, const std::string& where) const {
  if (type != GgufType::Array || element_type != element)
    fail("expected an array of ", gguf_type_name(element), ", got ",
         type == GgufType::Array ? "an array of " + std::string(gguf_type_name(element_type))
                                 : std::string(gguf_type_name(type)),
         " (", where, ")");
  return elements;
}

int64_t GgufTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : ne) n *= d;
  return n;
}

// ------------------------------------------------------------------------------ reading

GgufFile::GgufFile(const std::string& path) : file_(path) {
  Cursor in(file_.data(), file_.size(), path);
  const uint8_t* magic = in.take(4, "the GGUF magic");
  if (std::memcmp(magic, kMagic, 4) != 0) fail("not a GGUF file: it does not start with \"GGUF\" (", path, ")");
  version_ = in.u32("the version");
  if (version_ == 1) fail("GGUF version 1 is no longer supported (", path, ")");
  if (version_ != 2 && version_ != kVersion)
    fail("GGUF version ", version_, " is not supported (2 or 3; a big-endian file reads as a huge version) (", path,
         ")");
  // Minimal sizes: a tensor info is a name length, n_dims, type and offset; a key-value
  // pair is a key length, a type and at least one byte of value.
  const uint64_t n_tensors = in.u64("the tensor count");
  const uint64_t n_kv = in.u64("the metadata count");
  in.count(n_kv, 8 + 4 + 1, "metadata count");
  in.count(n_tensors, 8 + 4 + 4 + 8, "tensor count");

  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string key = in.string("metadata key " + std::to_string(i));
    if (key.empty()) fail("metadata key ", i, " is empty (", path, ")");
    if (metadata_index_.count(key)) fail("metadata key repeated (", path, ": ", key, ")");
    const GgufType type = in.type("value type of " + key);
    GgufValue value = in.value(type, key, 0);
    metadata_index_.emplace(key, metadata_.size());
    metadata_.emplace_back(std::move(key), std::move(value));
  }
  if (const GgufValue* a = find("general.alignment")) {
    if (a->type != GgufType::Uint32)
      fail("general.alignment must be a uint32, got ", gguf_type_name(a->type), " (", path, ")");
    if (a->bits == 0 || (a->bits & (a->bits - 1)) != 0)
      fail("general.alignment ", a->bits, " is not a power of two (", path, ")");
    alignment_ = static_cast<uint32_t>(a->bits);
  }

  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensor t;
    t.name = in.string("tensor " + std::to_string(i) + " name");
    const std::string where = path + ": " + t.name;
    if (t.name.empty()) fail("tensor ", i, " has an empty name (", path, ")");
    if (t.name.size() > kGgufMaxNameBytes)
      fail("tensor name is longer than ", kGgufMaxNameBytes, " bytes (", where, ")");
    if (tensor_index_.count(t.name)) fail("tensor name repeated (", where, ")");
    const uint32_t n_dims = in.u32("dimension count of " + t.name);
    if (n_dims > kGgufMaxDims) fail("tensor has ", n_dims, " dimensions, more than ", kGgufMaxDims, " (", where, ")");
    for (uint32_t d = 0; d < n_dims; ++d)
      t.ne.push_back(static_cast<int64_t>(in.u64("dimension " + std::to_string(d) + " of " + t.name)));
    const uint32_t type = in.u32("ggml type of " + t.name);
    const std::optional<DType> dtype = dtype_of_ggml_type(type);
    if (!dtype)
      fail("ggml type ", ggml_type_description(type), " is not supported (F32, F16, BF16, Q8_0, Q4_K, Q6_K) (", where,
           ")");
    t.dtype = *dtype;
    t.nbytes = static_cast<size_t>(checked_size(t.ne, t.dtype, where).second);
    t.offset = in.u64("data offset of " + t.name);
    tensor_index_.emplace(t.name, tensors_.size());
    tensors_.push_back(std::move(t));
  }

  data_offset_ = static_cast<size_t>(padded(in.position(), alignment_));
  if (!tensors_.empty() && data_offset_ > file_.size())
    fail("file truncated: the data section would start at ", data_offset_, ", past the end (", path, ")");
  // llama.cpp requires each tensor exactly where the previous one ends, padded.
  uint64_t expected = 0;
  for (GgufTensor& t : tensors_) {
    const std::string where = path + ": " + t.name;
    if (t.offset % alignment_ != 0)
      fail("data offset ", t.offset, " is not a multiple of the alignment ", alignment_, " (", where, ")");
    if (t.offset != expected)
      fail("data offset ", t.offset, " should be ", expected, ": tensors are packed in file order (", where, ")");
    const uint64_t room = file_.size() - data_offset_;
    if (t.offset > room || t.nbytes > room - t.offset)
      fail("tensor data (", t.nbytes, " bytes at ", data_offset_ + t.offset, ") runs past the end of the ",
           file_.size(), "-byte file (", where, ")");
    t.data = file_.data() + data_offset_ + t.offset;
    expected = padded(t.offset + t.nbytes, alignment_);
    if (dtype_block_values(t.dtype) == 1 && reinterpret_cast<uintptr_t>(t.data) % dtype_size(t.dtype) != 0) {
      auto copy = std::make_unique<uint8_t[]>(t.nbytes);
      std::memcpy(copy.get(), t.data, t.nbytes);
      t.data = copy.get();
      aligned_copies_.push_back(std::move(copy));
    }
  }
}

const GgufValue* GgufFile::find(const std::string& key) const {
  auto it = metadata_index_.find(key);
  return it == metadata_index_.end() ? nullptr : &metadata_[it->second].second;
}

const GgufValue& GgufFile::get(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) fail("missing metadata key (", path(), ": ", key, ")");
  return *v;
}

const GgufTensor* GgufFile::find_tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const GgufTensor& GgufFile::tensor(const std::string& name) const {
  const GgufTensor* t = find_tensor(name);
  if (!t) fail("missing tensor (", path(), ": ", name, ")");
  return *t;
}

// ------------------------------------------------------------------------------ writing

namespace {

class Encoder {
 public:
  void uint(uint64_t v, size_t bytes) {
    for (size_t i = 0; i < bytes; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
  void string(const std::string& s) {
    uint(s.size(), 8);
    out.insert(out.end(), s.begin(), s.end());
  }
  void value(const GgufValue& v, const std::string& where) {
    if (v.type == GgufType::String) return string(v.string);
    if (v.type != GgufType::Array) return uint(v.bits, scalar_size(v.type));
    uint(static_cast<uint32_t>(v.element_type), 4);
    uint(v.elements.size(), 8);
    for (const GgufValue& e : v.elements) {
      if (e.type != v.element_type)
        fail("array element of type ", gguf_type_name(e.type), " in an array of ", gguf_type_name(v.element_type),
             " (", where, ")");
      value(e, where);
    }
  }
  std::vector<uint8_t> out;
};

}  // namespace

void write_gguf(const std::string& path, const std::vector<std::pair<std::string, GgufValue>>& metadata,
                const std::vector<GgufTensorToWrite>& tensors) {
  Encoder header;
  for (char c : kMagic) header.out.push_back(static_cast<uint8_t>(c));
  header.uint(kVersion, 4);
  header.uint(tensors.size(), 8);
  header.uint(metadata.size(), 8);
  uint64_t alignment = kGgufDefaultAlignment;
  std::unordered_map<std::string, int> seen;
  for (const auto& [key, value] : metadata) {
    if (key.empty() || seen[key]++) fail("metadata key empty or repeated (", path, ": ", key, ")");
    if (key == "general.alignment") {
      if (value.type != GgufType::Uint32 || value.bits == 0 || (value.bits & (value.bits - 1)) != 0)
        fail("general.alignment must be a uint32 power of two (", path, ")");
      alignment = value.bits;
    }
    header.string(key);
    header.uint(static_cast<uint32_t>(value.type), 4);
    header.value(value, path + ": " + key);
  }
  std::vector<uint64_t> sizes;
  uint64_t offset = 0;
  seen.clear();
  for (const GgufTensorToWrite& t : tensors) {
    const std::string where = path + ": " + t.name;
    if (t.name.empty() || t.name.size() > kGgufMaxNameBytes || seen[t.name]++)
      fail("tensor name empty, longer than ", kGgufMaxNameBytes, " bytes or repeated (", where, ")");
    if (t.ne.size() > kGgufMaxDims) fail("tensor has more than ", kGgufMaxDims, " dimensions (", where, ")");
    sizes.push_back(checked_size(t.ne, t.dtype, where).second);
    header.string(t.name);
    header.uint(t.ne.size(), 4);
    for (int64_t n : t.ne) header.uint(static_cast<uint64_t>(n), 8);
    header.uint(ggml_type_id(t.dtype), 4);
    header.uint(offset, 8);
    offset = padded(offset + sizes.back(), alignment);
  }
  header.out.resize(static_cast<size_t>(padded(header.out.size(), alignment)), 0);

  AtomicFileWriter out(path);
  out.write(header.out.data(), header.out.size());
  const std::vector<uint8_t> zeros(static_cast<size_t>(alignment), 0);
  for (size_t i = 0; i < tensors.size(); ++i) {
    out.write(tensors[i].data, static_cast<size_t>(sizes[i]));
    out.write(zeros.data(), static_cast<size_t>(padded(sizes[i], alignment) - sizes[i]));
  }
  out.commit();
}

}  // namespace dsv3
