#include "formats/safetensors.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

#include "base/atomic_file.h"
#include "base/error.h"

namespace dsv3 {

using nlohmann::json;

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

namespace {

uint64_t read_u64_le(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// Reads a non-negative JSON integer that fits in int64.
int64_t as_count(const json& j, const std::string& what, const std::string& where) {
  if (!j.is_number_integer() || (j.is_number_integer() && !j.is_number_unsigned() && j.get<int64_t>() < 0))
    fail(what, " must be a non-negative integer, got ", j.dump(), " (", where, ")");
  uint64_t v = j.get<uint64_t>();
  if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
    fail(what, " is too large: ", v, " (", where, ")");
  return static_cast<int64_t>(v);
}

}  // namespace

SafetensorsFile::SafetensorsFile(const std::string& path) : file_(path) {
  const uint8_t* base = file_.data();
  const size_t size = file_.size();
  if (size < 8) fail("file too short for a safetensors header: ", size, " bytes (", path, ")");
  const uint64_t header_len = read_u64_le(base);
  if (header_len > kMaxSafetensorsHeader)
    fail("safetensors header length ", header_len, " exceeds the ", kMaxSafetensorsHeader, "-byte limit (", path, ")");
  if (header_len > size - 8)
    fail("safetensors header length ", header_len, " runs past the end of the ", size, "-byte file (", path, ")");

  json header;
  try {
    header = json::parse(base + 8, base + 8 + header_len);
  } catch (const json::parse_error& e) {
    fail("malformed safetensors header JSON: ", e.what(), " (", path, ")");
  }
  if (!header.is_object()) fail("safetensors header is not a JSON object (", path, ")");

  const uint8_t* data_area = base + 8 + header_len;
  const uint64_t data_size = size - 8 - header_len;
  struct Range {
    uint64_t begin, end;
    const std::string* name;
  };
  std::vector<Range> ranges;

  for (const auto& [name, entry] : header.items()) {
    const std::string where = path + ": " + name;
    if (name == "__metadata__") {
      if (!entry.is_object()) fail("__metadata__ must be an object of strings (", path, ")");
      for (const auto& [key, value] : entry.items()) {
        if (!value.is_string()) fail("__metadata__ value must be a string (", path, ": __metadata__.", key, ")");
        metadata_[key] = value.get<std::string>();
      }
      continue;
    }
    if (!entry.is_object()) fail("tensor entry is not an object (", where, ")");
    if (!entry.contains("dtype") || !entry["dtype"].is_string()) fail("tensor has no dtype string (", where, ")");
    if (!entry.contains("shape") || !entry["shape"].is_array()) fail("tensor has no shape array (", where, ")");
    if (!entry.contains("data_offsets") || !entry["data_offsets"].is_array() || entry["data_offsets"].size() != 2)
      fail("tensor has no data_offsets pair (", where, ")");

    TensorInfo info;
    info.name = name;
    const std::string dtype_str = entry["dtype"].get<std::string>();
    auto dtype = dtype_from_name(dtype_str);
    if (!dtype) fail("unsupported dtype ", dtype_str, " (", where, "; supported: F32, F16, BF16, F8_E4M3)");
    info.dtype = *dtype;

    uint64_t expected_bytes = dtype_size(info.dtype);
    for (const auto& d : entry["shape"]) {
      int64_t dim = as_count(d, "shape dimension", where);
      info.shape.push_back(dim);
      if (dim != 0 && expected_bytes > std::numeric_limits<uint64_t>::max() / static_cast<uint64_t>(dim))
        fail("tensor shape overflows (", where, ")");
      expected_bytes *= static_cast<uint64_t>(dim);
    }
    const uint64_t begin = static_cast<uint64_t>(as_count(entry["data_offsets"][0], "data_offsets begin", where));
    const uint64_t end = static_cast<uint64_t>(as_count(entry["data_offsets"][1], "data_offsets end", where));
    if (begin > end) fail("data_offsets begin ", begin, " is after end ", end, " (", where, ")");
    if (end > data_size)
      fail("data_offsets end ", end, " is past the end of the data area (", data_size, " bytes) (", where, ")");
    if (end - begin != expected_bytes)
      fail("byte length ", end - begin, " does not match shape x dtype size = ", expected_bytes, " (", where, ")");

    info.nbytes = static_cast<size_t>(end - begin);
    info.data = data_area + begin;
    info.file = &file_.path();
    auto [it, inserted] = tensors_.emplace(name, std::move(info));
    if (end > begin) ranges.push_back({begin, end, &it->first});  // empty tensors overlap nothing
  }

  std::sort(ranges.begin(), ranges.end(), [](const Range& a, const Range& b) { return a.begin < b.begin; });
  for (size_t i = 1; i < ranges.size(); ++i)
    if (ranges[i].begin < ranges[i - 1].end)
      fail("tensor data overlaps tensor ", *ranges[i - 1].name, " (", path, ": ", *ranges[i].name, ")");

  for (auto& [name, info] : tensors_) {
    if (reinterpret_cast<uintptr_t>(info.data) % dtype_size(info.dtype) != 0) {
      auto copy = std::make_unique<uint8_t[]>(info.nbytes);
      std::memcpy(copy.get(), info.data, info.nbytes);
      info.data = copy.get();
      aligned_copies_.push_back(std::move(copy));
    }
    if (info.dtype == DType::F8_E4M3) info.nan_scan = std::make_unique<Fp8NanScan>(info.data, info.nbytes);
  }
}

void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<const TensorToWrite*> order;
  for (const auto& t : tensors) order.push_back(&t);
  std::stable_sort(order.begin(), order.end(), [](const TensorToWrite* a, const TensorToWrite* b) {
    return dtype_size(a->dtype) > dtype_size(b->dtype);
  });

  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  std::vector<uint64_t> sizes;
  for (const TensorToWrite* t : order) {
    uint64_t bytes = dtype_size(t->dtype);
    for (int64_t d : t->shape) bytes *= static_cast<uint64_t>(d);
    header[t->name] = {{"dtype", dtype_name(t->dtype)}, {"shape", t->shape}, {"data_offsets", {offset, offset + bytes}}};
    sizes.push_back(bytes);
    offset += bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // keeps the data area 8-byte aligned

  uint8_t length[8];
  for (int i = 0; i < 8; ++i) length[i] = static_cast<uint8_t>(static_cast<uint64_t>(text.size()) >> (8 * i));
  AtomicFileWriter out(path);
  out.write(length, sizeof length);
  out.write(text.data(), text.size());
  for (size_t i = 0; i < order.size(); ++i) out.write(order[i]->data, sizes[i]);
  out.commit();
}

}  // namespace dsv3
