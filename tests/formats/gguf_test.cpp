#include "formats/gguf.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include "base/error.h"

namespace dsv3 {
namespace {

namespace fs = std::filesystem;

std::string temp_path(const std::string& name) { return (fs::path(testing::TempDir()) / (name + ".gguf")).string(); }

// Raw GGUF bytes, encoded here independently of the writer so tests can say anything.
struct Bytes {
  std::vector<uint8_t> b;
  Bytes& u(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) b.push_back(static_cast<uint8_t>(v >> (8 * i)));
    return *this;
  }
  Bytes& u32(uint64_t v) { return u(v, 4); }
  Bytes& u64(uint64_t v) { return u(v, 8); }
  Bytes& str(const std::string& s) {
    u64(s.size());
    b.insert(b.end(), s.begin(), s.end());
    return *this;
  }
  Bytes& header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
    b.insert(b.end(), {'G', 'G', 'U', 'F'});
    return u32(version).u64(n_tensors).u64(n_kv);
  }
  // name, dims, ggml type, offset
  Bytes& tensor(const std::string& name, std::vector<uint64_t> ne, uint32_t type, uint64_t offset) {
    str(name).u32(ne.size());
    for (uint64_t n : ne) u64(n);
    return u32(type).u64(offset);
  }
  Bytes& pad(size_t alignment) {
    while (b.size() % alignment) b.push_back(0);
    return *this;
  }
  Bytes& zeros(size_t n) {
    b.insert(b.end(), n, 0);
    return *this;
  }
  std::string write(const std::string& name) const {
    const std::string path = temp_path(name);
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
    return path;
  }
};

void expect_error(const Bytes& bytes, const std::string& name, std::vector<std::string> fragments) {
  const std::string path = bytes.write(name);
  fragments.push_back(path);
  try {
    GgufFile file(path);
    ADD_FAILURE() << "no error for " << name;
  } catch (const Error& e) {
    for (const auto& f : fragments) EXPECT_NE(std::string(e.what()).find(f), std::string::npos) << e.what() << " lacks " << f;
  }
}

uint64_t f64_bits(double d) {
  uint64_t bits;
  std::memcpy(&bits, &d, sizeof bits);
  return bits;
}

std::vector<std::pair<std::string, GgufValue>> every_type_metadata() {
  using T = GgufType;
  auto s = [](T t, uint64_t bits) { return GgufValue::scalar(t, bits); };
  return {
      {"u8", s(T::Uint8, 255)},
      {"i8", s(T::Int8, 0x80)},
      {"u16", s(T::Uint16, 65535)},
      {"i16", s(T::Int16, 0x8000)},
      {"u32", GgufValue::u32(4000000000u)},
      {"i32", GgufValue::i32(-2147483647 - 1)},
      {"f32", GgufValue::f32(-1.5f)},
      {"bool.true", GgufValue::boolean(true)},
      {"bool.false", GgufValue::boolean(false)},
      {"string", GgufValue::str(std::string("caf\xc3\xa9 \0 end", 11))},
      {"string.empty", GgufValue::str("")},
      {"u64", s(T::Uint64, ~uint64_t{0})},
      {"i64", s(T::Int64, uint64_t{1} << 63)},
      {"f64", s(T::Float64, f64_bits(0.1))},
      {"array.i32", GgufValue::array(T::Int32, {GgufValue::i32(-1), GgufValue::i32(7)})},
      {"array.f32", GgufValue::array(T::Float32, {GgufValue::f32(0.25f)})},
      {"array.bool", GgufValue::array(T::Bool, {GgufValue::boolean(true), GgufValue::boolean(false)})},
      {"array.u8", GgufValue::array(T::Uint8, {s(T::Uint8, 1), s(T::Uint8, 2), s(T::Uint8, 3)})},
      {"array.f64", GgufValue::array(T::Float64, {s(T::Float64, f64_bits(-2.0))})},
      {"array.string", GgufValue::array(T::String, {GgufValue::str("a b"), GgufValue::str("")})},
      {"array.empty", GgufValue::array(T::Uint64, {})},
      {"array.nested", GgufValue::array(T::Array, {GgufValue::array(T::String, {GgufValue::str("x")}),
                                                   GgufValue::array(T::Int16, {s(T::Int16, 5)})})},
  };
}

TEST(GgufTest, EveryMetadataTypeRoundTripsInOrder) {
  const std::string path = temp_path("metadata_round_trip");
  const auto metadata = every_type_metadata();
  write_gguf(path, metadata, {});
  GgufFile file(path);
  EXPECT_EQ(file.version(), 3u);
  ASSERT_EQ(file.metadata().size(), metadata.size());
  for (size_t i = 0; i < metadata.size(); ++i) {
    EXPECT_EQ(file.metadata()[i].first, metadata[i].first);
    EXPECT_TRUE(file.metadata()[i].second == metadata[i].second) << metadata[i].first;
  }
  EXPECT_EQ(file.get("u8").as_int("u8"), 255);
  EXPECT_EQ(file.get("i8").as_int("i8"), -128);
  EXPECT_EQ(file.get("i16").as_int("i16"), -32768);
  EXPECT_EQ(file.get("u32").as_int("u32"), 4000000000);
  EXPECT_EQ(file.get("i32").as_int("i32"), -2147483648);
  EXPECT_EQ(file.get("i64").as_int("i64"), std::numeric_limits<int64_t>::min());
  EXPECT_THROW(file.get("u64").as_int("u64"), Error);  // does not fit int64
  EXPECT_EQ(file.get("f32").as_float("f32"), -1.5);
  EXPECT_EQ(file.get("f64").as_float("f64"), 0.1);
  EXPECT_TRUE(file.get("bool.true").as_bool("b"));
  EXPECT_EQ(file.get("string").as_string("s"), std::string("caf\xc3\xa9 \0 end", 11));
  EXPECT_EQ(file.get("array.string").as_array(GgufType::String, "a")[0].as_string("a"), "a b");
  EXPECT_EQ(file.get("array.nested").as_array(GgufType::Array, "n")[1].as_array(GgufType::Int16, "n")[0].as_int("n"), 5);
  EXPECT_THROW(file.get("u8").as_string("u8"), Error);
  EXPECT_THROW(file.get("array.i32").as_array(GgufType::Uint32, "array.i32"), Error);
  EXPECT_THROW(file.get("absent"), Error);
}

TEST(GgufTest, TensorsKeepTheirOrderAndAlignment) {
  const std::vector<float> a = {1, 2, 3};
  const std::vector<uint16_t> b = {0x3c00, 0xc000, 0, 0x7bff, 1};  // F16: 1, -2, 0, 65504, 2^-24
  const std::vector<uint8_t> q(34 * 2, 7);                        // two Q8_0 blocks
  for (uint32_t alignment : {0u, 1u, 64u}) {
    SCOPED_TRACE(alignment);
    std::vector<std::pair<std::string, GgufValue>> metadata = {{"general.architecture", GgufValue::str("test")}};
    if (alignment) metadata.emplace_back("general.alignment", GgufValue::u32(alignment));
    const std::string path = temp_path("tensors_" + std::to_string(alignment));
    write_gguf(path, metadata,
               {{"z.first", DType::F32, {3}, a.data()},
                {"a.second", DType::F16, {5, 1}, b.data()},
                {"m.third", DType::Q8_0, {32, 2}, q.data()}});
    GgufFile file(path);
    const uint32_t expected_alignment = alignment ? alignment : 32;
    EXPECT_EQ(file.alignment(), expected_alignment);
    EXPECT_EQ(file.data_offset() % expected_alignment, 0u);
    ASSERT_EQ(file.tensors().size(), 3u);
    EXPECT_EQ(file.tensors()[0].name, "z.first");
    EXPECT_EQ(file.tensors()[1].name, "a.second");
    EXPECT_EQ(file.tensors()[2].name, "m.third");
    EXPECT_EQ(file.tensors()[1].ne, (std::vector<int64_t>{5, 1}));
    EXPECT_EQ(file.tensors()[2].dtype, DType::Q8_0);
    EXPECT_EQ(file.tensors()[2].nbytes, q.size());
    uint64_t offset = 0;
    for (const GgufTensor& t : file.tensors()) {
      EXPECT_EQ(t.offset, offset) << t.name;
      EXPECT_EQ(t.offset % expected_alignment, 0u);
      offset = (t.offset + t.nbytes + expected_alignment - 1) / expected_alignment * expected_alignment;
    }
    EXPECT_EQ(std::memcmp(file.tensor("z.first").data, a.data(), 12), 0);
    EXPECT_EQ(std::memcmp(file.tensor("a.second").data, b.data(), 10), 0);
    EXPECT_EQ(std::memcmp(file.tensor("m.third").data, q.data(), q.size()), 0);
    // Typed reads need element alignment: with general.alignment 1 the F32 tensor sits at
    // an odd address in the map and is served from an aligned copy.
    EXPECT_EQ(reinterpret_cast<uintptr_t>(file.tensor("z.first").data) % 4, 0u);
    EXPECT_EQ(fs::file_size(path), file.data_offset() + offset);
  }
}

// A small valid file whose last tensor ends the file exactly (no trailing padding), so
// every proper prefix of it is invalid.
Bytes small_file() {
  Bytes f;
  f.header(2, 2).str("general.architecture").u32(8).str("x").str("list").u32(9).u32(4).u64(2).u32(1).u32(2);
  f.tensor("a", {8}, 0, 0).tensor("b", {32}, 8, 32).pad(32);
  f.zeros(32);                  // a: 8 F32
  f.u(0x3c00, 2).zeros(32);     // b: one Q8_0 block (34 bytes)
  return f;
}

TEST(GgufTest, SmallFileIsValidAndEveryTruncationIsAnError) {
  const Bytes f = small_file();
  GgufFile file(f.write("small"));
  EXPECT_EQ(file.tensor("b").nbytes, 34u);
  for (size_t n = 0; n < f.b.size(); ++n) {
    Bytes truncated;
    truncated.b.assign(f.b.begin(), f.b.begin() + static_cast<std::ptrdiff_t>(n));
    const std::string path = truncated.write("truncated");
    EXPECT_THROW(GgufFile{path}, Error) << "prefix of " << n << " bytes";
  }
}

TEST(GgufTest, RejectsBadHeaders) {
  Bytes not_gguf;
  not_gguf.b = {'G', 'G', 'M', 'L', 3, 0, 0, 0};
  expect_error(not_gguf, "magic", {"not a GGUF file"});
  expect_error(Bytes().header(0, 0, 1), "v1", {"version 1"});
  expect_error(Bytes().header(0, 0, 4), "v4", {"version 4"});
  expect_error(Bytes().header(0, 0, 0x03000000), "big_endian", {"big-endian"});
  expect_error(Bytes().header(0, uint64_t{1} << 62), "huge_kv_count", {"metadata count"});
  expect_error(Bytes().header(~uint64_t{0}, 0), "negative_tensor_count", {"tensor count"});
  expect_error(Bytes().header(0, 1).u64(~uint64_t{0}).zeros(16), "huge_key", {"metadata key 0 length"});
  expect_error(Bytes().header(0, 1).str("k").u32(8).u64(uint64_t{1} << 40), "huge_string", {"k", "limit"});
  expect_error(Bytes().header(0, 1).str("k").u32(8).u64(1000).zeros(10), "long_string", {"truncated", "k"});
  expect_error(Bytes().header(0, 1).str("k").u32(9).u32(6).u64(uint64_t{1} << 29).zeros(8), "huge_array",
               {"array length of k"});
  expect_error(Bytes().header(0, 1).str("k").u32(13).u32(0), "unknown_value_type", {"value type of k", "13"});
  expect_error(Bytes().header(0, 1).str("k").u32(9).u32(77).u64(0), "unknown_element_type", {"element type of k"});
  expect_error(Bytes().header(0, 1).str("").u32(4).u32(1), "empty_key", {"empty"});
  expect_error(Bytes().header(0, 2).str("k").u32(4).u32(1).str("k").u32(4).u32(2), "repeated_key", {"repeated", "k"});
  Bytes deep;
  deep.header(0, 1).str("deep").u32(9);
  for (int i = 0; i < 40; ++i) deep.u32(9).u64(1);
  expect_error(deep, "deep_nesting", {"nested deeper", "deep"});
  expect_error(Bytes().header(0, 1).str("general.alignment").u32(10).u64(32), "alignment_u64",
               {"general.alignment must be a uint32"});
  expect_error(Bytes().header(0, 1).str("general.alignment").u32(4).u32(48), "alignment_48", {"power of two"});
}

TEST(GgufTest, RejectsBadTensorInfos) {
  auto one = [](const std::string& name, std::vector<uint64_t> ne, uint32_t type, uint64_t offset) {
    Bytes f;
    f.header(1, 0).tensor(name, std::move(ne), type, offset).pad(32).zeros(4096);
    return f;
  };
  expect_error(one("w", {8}, 99, 0), "unknown_type", {"w", "99 (unknown)"});
  expect_error(one("w", {256}, 13, 0), "q5_k", {"w", "13 (Q5_K)", "not supported"});
  expect_error(one("w", {16}, 8, 0), "partial_block", {"w", "Q8_0 blocks"});
  expect_error(one("w", {8}, 0, 4), "misaligned", {"w", "not a multiple of the alignment 32"});
  expect_error(one("w", {8}, 0, 64), "gap", {"w", "should be 0"});
  expect_error(one("w", {8}, 0, uint64_t{1} << 63), "offset_huge", {"w"});
  expect_error(one("w", {100000}, 0, 0), "past_end", {"w", "past the end"});
  expect_error(one("w", {2, 2, 2, 2, 2}, 0, 0), "five_dims", {"w", "5 dimensions"});
  expect_error(one("w", {~uint64_t{0}}, 0, 0), "negative_dim", {"w", "negative"});
  expect_error(one("w", {uint64_t{1} << 32, uint64_t{1} << 32}, 0, 0), "overflow", {"w", "overflows"});
  expect_error(one(std::string(64, 'n'), {8}, 0, 0), "long_name", {"longer than 63"});
  expect_error(one("", {8}, 0, 0), "empty_name", {"empty name"});
  Bytes repeated;
  repeated.header(2, 0).tensor("w", {8}, 0, 0).tensor("w", {8}, 0, 32).pad(32).zeros(64);
  expect_error(repeated, "repeated_tensor", {"w", "repeated"});
  Bytes overlapping;
  overlapping.header(2, 0).tensor("a", {16}, 0, 0).tensor("b", {8}, 0, 32).pad(32).zeros(128);
  expect_error(overlapping, "overlap", {"b", "should be 64"});
}

TEST(GgufTest, WriterRefusesWhatTheReaderWould) {
  const float x[32] = {};
  const std::string path = temp_path("refused");
  EXPECT_THROW(write_gguf(path, {}, {{"a", DType::F32, {1}, x}, {"a", DType::F32, {1}, x}}), Error);
  EXPECT_THROW(write_gguf(path, {}, {{"q", DType::Q8_0, {16}, x}}), Error);
  EXPECT_THROW(write_gguf(path, {}, {{"f8", DType::F8_E4M3, {4}, x}}), Error);
  EXPECT_THROW(write_gguf(path, {{"general.alignment", GgufValue::u32(24)}}, {}), Error);
  EXPECT_THROW(write_gguf(path, {{"k", GgufValue::u32(1)}, {"k", GgufValue::u32(2)}}, {}), Error);
  EXPECT_FALSE(fs::exists(path));
}

}  // namespace
}  // namespace dsv3
