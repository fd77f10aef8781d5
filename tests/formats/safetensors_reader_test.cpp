#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "base/error.h"
#include "formats/safetensors.h"

namespace dsv3 {
namespace {

namespace fs = std::filesystem;

std::string temp_path(const std::string& name) { return (fs::path(testing::TempDir()) / name).string(); }

// Writes a raw safetensors file: 8-byte little-endian header length, header, data.
std::string write_raw(const std::string& name, const std::string& header, const std::string& data,
                      std::optional<uint64_t> declared_length = std::nullopt) {
  const std::string path = temp_path(name);
  std::ofstream out(path, std::ios::binary);
  const uint64_t n = declared_length.value_or(header.size());
  for (int i = 0; i < 8; ++i) out.put(static_cast<char>(n >> (8 * i)));
  out << header << data;
  return path;
}

// Opening must throw an Error whose message contains every fragment.
void expect_error(const std::string& path, std::vector<std::string> fragments) {
  fragments.push_back(path);
  try {
    SafetensorsFile file(path);
    ADD_FAILURE() << "no error for " << path;
  } catch (const Error& e) {
    for (const auto& f : fragments) EXPECT_NE(std::string(e.what()).find(f), std::string::npos) << e.what() << " lacks " << f;
  }
}

const std::string kData8(8, '\0');

TEST(SafetensorsReaderTest, RejectsBrokenHeaders) {
  expect_error(write_raw("empty_header", "", ""), {"malformed"});
  {
    const std::string path = temp_path("three_bytes.safetensors");
    std::ofstream(path, std::ios::binary) << "abc";
    expect_error(path, {"too short"});
  }
  expect_error(write_raw("len_past_end", "{}", "", 1000), {"past the end"});
  expect_error(write_raw("len_huge", "{}", "", uint64_t{1} << 40), {"limit"});
  expect_error(write_raw("len_max", "{}", "", ~uint64_t{0}), {"limit"});
  expect_error(write_raw("not_json", "{not json", ""), {"malformed"});
  expect_error(write_raw("truncated_json", R"({"w": {"dtype": "F32", "shape": [2])", ""), {"malformed"});
  expect_error(write_raw("array", "[1, 2]", ""), {"not a JSON object"});
}

TEST(SafetensorsReaderTest, RejectsBadTensorEntries) {
  expect_error(write_raw("no_dtype", R"({"w": {"shape": [2], "data_offsets": [0, 8]}})", kData8), {"w", "dtype"});
  expect_error(write_raw("no_shape", R"({"w": {"dtype": "F32", "data_offsets": [0, 8]}})", kData8), {"w", "shape"});
  expect_error(write_raw("no_offsets", R"({"w": {"dtype": "F32", "shape": [2]}})", kData8), {"w", "data_offsets"});
  expect_error(write_raw("f64", R"({"w": {"dtype": "F64", "shape": [1], "data_offsets": [0, 8]}})", kData8),
               {"w", "F64"});
  expect_error(write_raw("i8", R"({"w": {"dtype": "I8", "shape": [8], "data_offsets": [0, 8]}})", kData8), {"w", "I8"});
  expect_error(write_raw("neg_dim", R"({"w": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}})", kData8),
               {"w", "shape"});
  expect_error(write_raw("float_dim", R"({"w": {"dtype": "F32", "shape": [2.5], "data_offsets": [0, 8]}})", kData8),
               {"w", "shape"});
  expect_error(write_raw("reversed", R"({"w": {"dtype": "F32", "shape": [0], "data_offsets": [8, 0]}})", kData8),
               {"w", "begin"});
  expect_error(write_raw("past_end", R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})", kData8),
               {"w", "past the end"});
  expect_error(write_raw("wrong_size", R"({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", kData8),
               {"w", "does not match"});
  expect_error(write_raw("overflow",
                         R"({"w": {"dtype": "F32", "shape": [4294967296, 4294967296, 16], "data_offsets": [0, 8]}})",
                         kData8),
               {"w", "overflow"});
  expect_error(write_raw("overlap",
                         R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},)"
                         R"( "b": {"dtype": "BF16", "shape": [2], "data_offsets": [4, 8]}})",
                         kData8),
               {"overlaps"});
  expect_error(write_raw("meta_array", R"({"__metadata__": [1]})", ""), {"__metadata__"});
  expect_error(write_raw("meta_value", R"({"__metadata__": {"k": 1}})", ""), {"__metadata__"});
}

TEST(SafetensorsReaderTest, MisalignedTensorsAreCopiedAndReadCorrectly) {
  // A 1-byte FP8 tensor first puts the F32 tensor at an odd address.
  std::string data;
  data += '\x38';  // e4m3 1.0
  const float values[2] = {1.5f, -2.25f};
  data.append(reinterpret_cast<const char*>(values), sizeof values);
  const std::string path = write_raw("misaligned",
                                     R"({"q": {"dtype": "F8_E4M3", "shape": [1], "data_offsets": [0, 1]},)"
                                     R"( "w": {"dtype": "F32", "shape": [2], "data_offsets": [1, 9]}})",
                                     data);
  SafetensorsFile file(path);
  const TensorInfo& w = file.tensors().at("w");
  ASSERT_EQ(reinterpret_cast<uintptr_t>(w.data) % 4, 0u);
  EXPECT_EQ(reinterpret_cast<const float*>(w.data)[1], -2.25f);
}

TEST(SafetensorsReaderTest, EveryTruncationOfAValidFileIsAnError) {
  const std::vector<float> a = {1, 2, 3, 4, 5, 6};
  const std::vector<uint16_t> b = {1, 2, 3};
  const std::string path = temp_path("valid_for_truncation.safetensors");
  write_safetensors(path, {{"a", DType::F32, {2, 3}, a.data()}, {"b", DType::BF16, {3}, b.data()}}, {{"k", "v"}});
  std::ifstream in(path, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), {});
  for (size_t n = 0; n < bytes.size(); ++n) {
    const std::string cut = temp_path("truncated.safetensors");
    std::ofstream(cut, std::ios::binary | std::ios::trunc).write(bytes.data(), static_cast<std::streamsize>(n));
    EXPECT_THROW(SafetensorsFile file(cut), Error) << "truncated to " << n << " of " << bytes.size();
  }
}

TEST(SafetensorsReaderTest, RandomByteCorruptionNeverCrashes) {
  const std::vector<float> a(16, 1.0f);
  const std::string path = temp_path("valid_for_fuzz.safetensors");
  write_safetensors(path, {{"a", DType::F32, {4, 4}, a.data()}, {"b", DType::F32, {2, 2}, a.data()}});
  std::ifstream in(path, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), {});
  std::mt19937 rng(5);
  for (int trial = 0; trial < 2000; ++trial) {
    std::string corrupt = bytes;
    for (int k = 0; k < 3; ++k) corrupt[rng() % 120 % corrupt.size()] = static_cast<char>(rng());
    const std::string cut = temp_path("fuzzed.safetensors");
    std::ofstream(cut, std::ios::binary | std::ios::trunc) << corrupt;
    try {
      SafetensorsFile file(cut);  // may be valid by chance; it must just not crash
    } catch (const Error&) {
    }
  }
}

TEST(SafetensorsWriterTest, RoundTripsEveryDtypeWithMetadataAtomically) {
  const std::vector<float> f32 = {1.0f, -2.0f, 3.5f};
  const std::vector<uint16_t> bf16 = {0x3f80, 0xc000};
  const std::vector<uint16_t> f16 = {0x3c00};
  const std::vector<uint8_t> f8 = {0x38, 0x7e, 0x01, 0x00, 0x80};
  const std::string path = temp_path("roundtrip.safetensors");
  std::ofstream(path) << "old contents";
  write_safetensors(path,
                    {{"f8", DType::F8_E4M3, {5}, f8.data()},
                     {"bf16", DType::BF16, {1, 2}, bf16.data()},
                     {"f32", DType::F32, {3}, f32.data()},
                     {"f16", DType::F16, {1}, f16.data()},
                     {"empty", DType::F32, {0, 4}, nullptr}},
                    {{"format", "pt"}});
  SafetensorsFile file(path);
  EXPECT_EQ(file.metadata().at("format"), "pt");
  ASSERT_EQ(file.tensors().size(), 5u);
  EXPECT_EQ(std::memcmp(file.tensors().at("f32").data, f32.data(), 12), 0);
  EXPECT_EQ(std::memcmp(file.tensors().at("bf16").data, bf16.data(), 4), 0);
  EXPECT_EQ(std::memcmp(file.tensors().at("f16").data, f16.data(), 2), 0);
  EXPECT_EQ(std::memcmp(file.tensors().at("f8").data, f8.data(), 5), 0);
  EXPECT_EQ(file.tensors().at("bf16").shape, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(file.tensors().at("empty").nbytes, 0u);
  for (const auto& [name, t] : file.tensors())
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data) % dtype_size(t.dtype), 0u) << name;
  for (const auto& entry : fs::directory_iterator(testing::TempDir()))
    EXPECT_EQ(entry.path().filename().string().find("roundtrip.safetensors.tmp"), std::string::npos);
}

}  // namespace
}  // namespace dsv3
