// The block formats decoded against blocks packed here from chosen fields, following the
// layouts as ggml documents them (written out again below, independently of the decoder).
#include "tensor/block_quant.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "tensor/matrix.h"

namespace dsv3 {
namespace {

void put_f16(uint8_t* p, float value) {
  const uint16_t h = f32_to_f16(value);
  p[0] = static_cast<uint8_t>(h & 0xff);
  p[1] = static_cast<uint8_t>(h >> 8);
}

std::vector<float> decode_all(DType dtype, const std::vector<uint8_t>& blocks, int64_t cols) {
  std::vector<float> out(static_cast<size_t>(cols));
  const Matrix m{dtype, 1, cols, blocks.data(), nullptr, 0};
  m.decode_row(0, 0, cols, out.data());
  return out;
}

TEST(BlockQuantTest, Q8_0IsScaleTimesSignedByte) {
  std::vector<uint8_t> block(34);
  put_f16(block.data(), 0.5f);
  for (int i = 0; i < 32; ++i) block[2 + i] = static_cast<uint8_t>(static_cast<int8_t>(i * 8 - 128));
  const std::vector<float> x = decode_all(DType::Q8_0, block, 32);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(x[i], 0.5f * float(i * 8 - 128)) << i;
}

TEST(BlockQuantTest, Q4_KFollowsItsScaleAndMinPacking) {
  std::mt19937 rng(1);
  const float d = 0.03125f, dmin = 0.0078125f;
  uint8_t sc[8], m[8], q[256];
  for (int j = 0; j < 8; ++j) sc[j] = static_cast<uint8_t>(rng() % 64), m[j] = static_cast<uint8_t>(rng() % 64);
  sc[5] = 63, m[6] = 63;  // top bits set
  for (uint8_t& v : q) v = static_cast<uint8_t>(rng() % 16);

  std::vector<uint8_t> block(144, 0);
  put_f16(block.data(), d);
  put_f16(block.data() + 2, dmin);
  uint8_t* scales = block.data() + 4;
  for (int j = 0; j < 4; ++j) {  // sub-blocks 0-3: six bits each in scales[j] (sc) and scales[j + 4] (m)
    scales[j] |= sc[j];
    scales[j + 4] |= m[j];
  }
  for (int j = 4; j < 8; ++j) {  // 4-7: low nibbles in scales[j + 4], top two bits above 0-3's
    scales[j + 4] = static_cast<uint8_t>((sc[j] & 0xf) | ((m[j] & 0xf) << 4));
    scales[j - 4] |= static_cast<uint8_t>((sc[j] >> 4) << 6);
    scales[j] |= static_cast<uint8_t>((m[j] >> 4) << 6);
  }
  uint8_t* qs = block.data() + 16;
  for (int i = 0; i < 256; ++i) {  // sub-blocks 2k, 2k + 1 share 32 bytes: low, high nibbles
    const int sub = i / 32, l = i % 32;
    qs[32 * (sub / 2) + l] |= static_cast<uint8_t>(q[i] << (4 * (sub % 2)));
  }

  const std::vector<float> x = decode_all(DType::Q4_K, block, 256);
  for (int i = 0; i < 256; ++i) {
    const int j = i / 32;
    const float expected = (d * float(sc[j])) * float(q[i]) - dmin * float(m[j]);
    EXPECT_NEAR(x[i], expected, 1e-6f) << i;
  }
}

TEST(BlockQuantTest, Q6_KFollowsItsBitPlanes) {
  std::mt19937 rng(2);
  const float d = 0.001953125f;
  int8_t scale[16];
  uint8_t q[256];
  for (int8_t& s : scale) s = static_cast<int8_t>(int(rng() % 256) - 128);
  for (uint8_t& v : q) v = static_cast<uint8_t>(rng() % 64);

  std::vector<uint8_t> block(210, 0);
  uint8_t* ql = block.data();
  uint8_t* qh = block.data() + 128;
  std::memcpy(block.data() + 192, scale, 16);
  put_f16(block.data() + 208, d);
  for (int i = 0; i < 256; ++i) {
    const int half = i / 128, k = (i % 128) / 32, l = i % 32;
    ql[64 * half + 32 * (k & 1) + l] |= static_cast<uint8_t>((q[i] & 0xf) << (4 * (k >> 1)));
    qh[32 * half + l] |= static_cast<uint8_t>((q[i] >> 4) << (2 * k));
  }

  const std::vector<float> x = decode_all(DType::Q6_K, block, 256);
  for (int i = 0; i < 256; ++i) {
    const int half = i / 128, k = (i % 128) / 32, l = i % 32;
    const float expected = (d * float(scale[8 * half + l / 16 + 2 * k])) * float(int(q[i]) - 32);
    EXPECT_NEAR(x[i], expected, 1e-6f) << i;
  }
}

TEST(BlockQuantTest, RowRangesAndSlicesCutBlocks) {
  std::mt19937 rng(3);
  for (DType dtype : {DType::Q8_0, DType::Q4_K, DType::Q6_K}) {
    SCOPED_TRACE(dtype_name(dtype));
    const int64_t rows = 3, cols = 512;
    std::vector<uint8_t> data(rows * dtype_row_bytes(dtype, cols));
    for (uint8_t& b : data) b = static_cast<uint8_t>(rng());
    for (size_t i = 0; i < data.size(); i += dtype_size(dtype)) {  // finite F16 scales
      if (dtype == DType::Q6_K) put_f16(&data[i + 208], 0.01f);
      else put_f16(&data[i], 0.01f);
      if (dtype == DType::Q4_K) put_f16(&data[i + 2], 0.02f);
    }
    const Matrix m{dtype, rows, cols, data.data(), nullptr, 0};
    const std::vector<float> all = decode_to_f32(m);
    std::vector<float> part(cols);
    for (auto [c0, c1] : {std::pair<int64_t, int64_t>{0, 512}, {5, 300}, {31, 33}, {256, 257}, {100, 100}}) {
      m.decode_row(2, c0, c1, part.data());
      for (int64_t c = c0; c < c1; ++c) ASSERT_EQ(part[c - c0], all[2 * cols + c]) << c0 << ".." << c1;
    }
    const Matrix last = m.row_slice(1, 2);
    last.decode_row(1, 0, cols, part.data());
    for (int64_t c = 0; c < cols; ++c) ASSERT_EQ(part[c], all[2 * cols + c]);
  }
}

TEST(BlockQuantTest, Q8_0RoundTripIsWithinHalfAStep) {
  std::mt19937 rng(4);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int64_t n = 32 * 64;
  std::vector<float> x(n);
  for (float& v : x) v = normal(rng) * std::exp(normal(rng));
  for (int i = 0; i < 32; ++i) x[i] = 0.0f;  // an all-zero block
  x[40] = 1e-6f;                              // a block whose scale is an F16 subnormal
  const std::vector<uint8_t> q = encode_values(x.data(), x.size(), DType::Q8_0);
  ASSERT_EQ(q.size(), size_t(64 * 34));
  const std::vector<float> y = decode_all(DType::Q8_0, q, n);
  for (int64_t b = 0; b < 64; ++b) {
    float amax = 0.0f;
    for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[b * 32 + i]));
    const float d = amax / 127.0f;
    const float stored_d = f16_to_f32(static_cast<uint16_t>(q[b * 34] | (q[b * 34 + 1] << 8)));
    // Rounding to the nearest step of d is off by d/2 at most; the F16 rounding of d then
    // moves the result by up to 127 |d - stored_d|.
    const float bound = 0.5f * d + 127.0f * std::fabs(d - stored_d) + 1e-12f;
    for (int i = 0; i < 32; ++i) {
      const int64_t k = b * 32 + i;
      EXPECT_LE(std::fabs(x[k] - y[k]), bound) << "block " << b << " value " << i;
      const int8_t code = static_cast<int8_t>(q[b * 34 + 2 + i]);
      EXPECT_EQ(static_cast<float>(code), d == 0 ? 0.0f : std::round(x[k] * (1.0f / d))) << k;
    }
  }
}

}  // namespace
}  // namespace dsv3
