#include "kernels/cpu/matmul.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <iostream>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/cpu_kernels.h"
#include "random_input.h"
#include "tensor/block_quant.h"
#include "tensor/dtype.h"
#include "tensor/fp8_blocks.h"

namespace dsv3 {
namespace {

// A weight matrix stored in one dtype, with the exact FP32 values it decodes to
// (computed here from the dtype definitions, independently of Matrix::decode_row).
struct StoredMatrix {
  std::vector<uint8_t> bytes;
  std::vector<float> scales;
  std::vector<double> values;  // what the stored weight means, row-major
  std::unique_ptr<Fp8NanScan> nan_scan;  // FP8 (a test may plant NaN codes before the first product)
  Matrix view;
};

// The exact values of FP8 codes under their block scales (after make_matrix, or a test, set them).
void set_fp8_values(StoredMatrix& m) {
  const int64_t rows = m.view.rows, cols = m.view.cols, scale_cols = m.view.scale_cols();
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      m.values[r * cols + c] =
          double(e4m3_to_f32(m.bytes[r * cols + c])) * m.scales[(r / 128) * scale_cols + c / 128];
}

StoredMatrix make_matrix(DType dtype, int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> w(static_cast<size_t>(rows * cols));
  for (auto& v : w) v = normal(rng);
  StoredMatrix m;
  m.values.resize(w.size());
  m.bytes.resize(w.size() * dtype_size(dtype));
  if (dtype == DType::Q8_0) {  // blocks of 32: an F16 scale d, then 32 int8 q; value d * q
    const size_t row_bytes = dtype_row_bytes(dtype, cols);
    m.bytes.assign(rows * row_bytes, 0);
    for (int64_t r = 0; r < rows; ++r) quantize_q8_0(&w[r * cols], cols, &m.bytes[r * row_bytes]);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t b = 0; b < cols / 32; ++b) {
        const uint8_t* block = &m.bytes[r * row_bytes + b * 34];
        uint16_t d16;
        std::memcpy(&d16, block, 2);
        const double d = static_cast<double>(std::bit_cast<_Float16>(d16));
        for (int64_t i = 0; i < 32; ++i) m.values[r * cols + b * 32 + i] = d * static_cast<int8_t>(block[2 + i]);
      }
  } else if (dtype == DType::F8_E4M3) {
    const int64_t br = (rows + 127) / 128, bc = (cols + 127) / 128;
    m.scales.resize(static_cast<size_t>(br * bc));
    quantize_fp8_blocks(w.data(), rows, cols, m.bytes.data(), m.scales.data());
  } else {
    for (size_t i = 0; i < w.size(); ++i) {
      if (dtype == DType::F32) {
        std::memcpy(&m.bytes[4 * i], &w[i], 4);
        m.values[i] = w[i];
      } else if (dtype == DType::BF16) {
        const uint16_t h = f32_to_bf16(w[i]);
        std::memcpy(&m.bytes[2 * i], &h, 2);
        m.values[i] = bits_to_f32(uint32_t{h} << 16);
      } else {
        const _Float16 h = static_cast<_Float16>(w[i]);
        std::memcpy(&m.bytes[2 * i], &h, 2);
        m.values[i] = static_cast<double>(h);
      }
    }
  }
  m.view = Matrix{dtype, rows, cols, m.bytes.data(), m.scales.empty() ? nullptr : m.scales.data(), 0};
  if (dtype == DType::F8_E4M3) {
    m.nan_scan = std::make_unique<Fp8NanScan>(m.bytes.data(), m.bytes.size());
    m.view.nan_scan = m.nan_scan.get();
    set_fp8_values(m);
  }
  return m;
}

// |error| <= n * eps_f32 * sum |w x| bounds any FP32 summation order.
void expect_close(double got, double exact, double abs_sum, int64_t n, double floor = 1e-30) {
  EXPECT_LE(std::fabs(got - exact), 1e-7 * double(n) * abs_sum + floor) << got << " vs " << exact;
}

// y = x W^T of T tokens against the sums of the stored values in double precision; `floor`
// allows for products below FP32's normal range.
void expect_matches_double(const StoredMatrix& m, const std::vector<float>& x, int64_t T, const std::vector<float>& y,
                           double floor = 1e-30) {
  const int64_t rows = m.view.rows, cols = m.view.cols;
  for (int64_t t = 0; t < T; ++t)
    for (int64_t r = 0; r < rows; ++r) {
      double exact = 0, abs_sum = 0;
      for (int64_t c = 0; c < cols; ++c) {
        exact += m.values[r * cols + c] * x[t * cols + c];
        abs_sum += std::fabs(m.values[r * cols + c] * x[t * cols + c]);
      }
      SCOPED_TRACE("token " + std::to_string(t) + ", row " + std::to_string(r));
      expect_close(y[t * rows + r], exact, abs_sum, cols, floor);
    }
}

class MatmulTest : public ::testing::TestWithParam<DType> {};

TEST_P(MatmulTest, MatchesDoublePrecisionOnOddSizes) {
  ThreadPool pool(2);
  for (auto [rows, cols, T] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{
           {1, 1, 1}, {3, 7, 2}, {5, 17, 5}, {130, 200, 9}, {257, 513, 4}, {64, 1030, 13}}) {
    StoredMatrix m = make_matrix(GetParam(), rows, cols, 7);
    std::vector<float> x = random_input(T * cols, 11);
    std::vector<float> y(static_cast<size_t>(T * rows), NAN);
    matmul(m.view, x.data(), T, y.data(), pool);
    expect_matches_double(m, x, T, y);
  }
}

// Passes of 1-4 tokens (BF16 and FP8 weights decoded in registers) and of more tokens (rows
// decoded first) give each token the same bits.
TEST_P(MatmulTest, TransposedProductOfARowSliceMatchesDoublePrecision) {
  const int64_t rows = 300, T = 6, begin = 133, count = 150;  // slice crosses an FP8 block edge
  // 600 columns: passes of 1 and 2 tokens take wide strips (256 and 128 columns) where they fit.
  for (int64_t cols : {int64_t{140}, int64_t{600}}) {
    StoredMatrix m = make_matrix(GetParam(), rows, cols, 5);
    std::vector<float> x = random_input(T * count, 3);
    for (int64_t used : {cols, cols / 2 + 5, int64_t{5}}) {  // all columns, or the first ones (y is [T][used])
      std::vector<float> y(static_cast<size_t>(T * used + 1), NAN);
      matmul_transposed(m.view.row_slice(begin, count), x.data(), count, T, y.data(), used);
      EXPECT_TRUE(std::isnan(y.back())) << "wrote past [T][" << used << "]";
      for (int64_t first : {0, 2}) {  // tokens [first, first + pass) in passes of 1-4
        for (int64_t pass : {1, 2, 3, 4}) {
          std::vector<float> part(static_cast<size_t>(pass * used));
          matmul_transposed(m.view.row_slice(begin, count), x.data() + first * count, count, pass, part.data(), used);
          EXPECT_EQ(std::memcmp(part.data(), y.data() + first * used, part.size() * sizeof(float)), 0)
              << "tokens " << first << " + " << pass << ", " << used << " of " << cols << " columns";
        }
      }
      for (int64_t t = 0; t < T; ++t)
        for (int64_t c = 0; c < used; ++c) {
          double exact = 0, abs_sum = 0;
          for (int64_t r = 0; r < count; ++r) {
            exact += x[t * count + r] * m.values[(begin + r) * cols + c];
            abs_sum += std::fabs(x[t * count + r] * m.values[(begin + r) * cols + c]);
          }
          expect_close(y[t * used + c], exact, abs_sum, count);
        }
    }
  }
}

TEST_P(MatmulTest, ResultDoesNotDependOnThreadCount) {
  StoredMatrix m = make_matrix(GetParam(), 203, 300, 9);
  std::vector<float> x = random_input(6 * 300, 4);
  std::vector<float> y1(6 * 203), y2(6 * 203);
  ThreadPool one(1), three(3);
  matmul(m.view, x.data(), 6, y1.data(), one);
  matmul(m.view, x.data(), 6, y2.data(), three);
  EXPECT_EQ(std::memcmp(y1.data(), y2.data(), y1.size() * sizeof(float)), 0);
}

// 11 tokens in one product and in passes of 1-4 give the same bits, on m and a row slice of it.
void expect_same_bits_in_passes(const StoredMatrix& m, MatmulInput input) {
  ThreadPool pool(2);
  for (const Matrix& w : {m.view, m.view.row_slice(133, 150)}) {
    const int64_t T = 11;
    std::vector<float> x = random_input(T * w.cols, 6);
    std::vector<float> all(static_cast<size_t>(T * w.rows)), part(all.size());
    matmul(w, x.data(), T, all.data(), pool, input);
    for (int64_t chunk : {1, 2, 3, 4}) {
      for (int64_t t = 0; t < T; t += chunk)
        matmul(w, x.data() + t * w.cols, std::min(chunk, T - t), part.data() + t * w.rows, pool, input);
      EXPECT_EQ(std::memcmp(all.data(), part.data(), all.size() * sizeof(float)), 0) << "passes of " << chunk;
    }
  }
}

// A token's result does not depend on how many tokens share the product: passes of 1-4
// tokens decode the weights in registers, larger ones through a tile, and the two give the
// same bits (odd sizes, several 512-column tiles, a row slice that starts mid FP8 block).
TEST_P(MatmulTest, FewTokensAndManyTokensGiveTheSameBits) {
  expect_same_bits_in_passes(make_matrix(GetParam(), 300, 1100, 8), MatmulInput::kF32);
}

// The same with BF16 x and BF16 weights: passes of any size take the dot-product instruction
// where the CPU has AVX512-BF16 (the FP32 path on the rounded x where it has not), unless AMX
// tiles take the larger passes, which sum in another order.
TEST(MatmulBf16Test, FewTokensAndManyTokensGiveTheSameBits) {
  if (cpu_kernels().amx_usable()) GTEST_SKIP() << "AMX tiles take passes of more than 4 tokens";
  expect_same_bits_in_passes(make_matrix(DType::BF16, 300, 1100, 8), MatmulInput::kBF16);
}

// And with BF16 x and FP8 weights (rows a multiple of 128 long): their exact BF16 values by
// table lookups meet x in the dot-product instruction in passes of any size, where the CPU has
// AVX512-BF16 and VBMI.
TEST(MatmulBf16Test, Fp8FewTokensAndManyTokensGiveTheSameBits) {
  if (cpu_kernels().amx_usable()) GTEST_SKIP() << "AMX tiles take passes of more than 4 tokens";
  expect_same_bits_in_passes(make_matrix(DType::F8_E4M3, 300, 1152, 8), MatmulInput::kBF16);
}

// NaN codes of E4M3 (0x7F, 0xFF) make their rows' products NaN in passes of any size (the
// tensor's scan finds them, and no path then decodes its codes in registers, which would turn
// them into numbers); the other rows keep their bits. Codes planted mid-tile, in a tile's last
// columns and in a row's tail.
TEST(MatmulFp8Test, NanCodesGiveNanRowsOnEveryPath) {
  ThreadPool pool(2);
  StoredMatrix m = make_matrix(DType::F8_E4M3, 40, 1100, 9);
  const std::vector<std::pair<int64_t, uint8_t>> planted = {{5 * 1100 + 700, 0x7F}, {22 * 1100 + 511, 0xFF},
                                                            {31 * 1100 + 1099, 0x7F}};
  for (auto [at, code] : planted) m.bytes[static_cast<size_t>(at)] = code;
  const int64_t T = 6;
  std::vector<float> x = random_input(T * m.view.cols, 2);
  std::vector<float> all(static_cast<size_t>(T * m.view.rows)), one(all.size());
  matmul(m.view, x.data(), T, all.data(), pool);
  for (int64_t t = 0; t < T; ++t) matmul(m.view, x.data() + t * m.view.cols, 1, one.data() + t * m.view.rows, pool);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t r = 0; r < m.view.rows; ++r) {
      const bool nan_row = r == 5 || r == 22 || r == 31;
      const float a = all[t * m.view.rows + r], b = one[t * m.view.rows + r];
      EXPECT_EQ(std::isnan(a), nan_row) << "row " << r;
      EXPECT_EQ(std::isnan(b), nan_row) << "row " << r;
      if (!nan_row) {
        EXPECT_EQ(a, b) << "row " << r;
      }
    }
}

// An FP8 tensor found clean is decoded in registers (every pass size, matmul and
// matmul_transposed) with the bits of decode_row, which a view without a scan takes.
TEST(MatmulFp8Test, ScannedTensorsGiveTheBitsOfTheUnscannedPath) {
  ThreadPool pool(2);
  const StoredMatrix m = make_matrix(DType::F8_E4M3, 260, 640, 14);
  Matrix unscanned = m.view;
  unscanned.nan_scan = nullptr;
  for (int64_t T : {1, 2, 3, 4, 9}) {
    const std::vector<float> x = random_input(T * m.view.cols, 15), xt = random_input(T * m.view.rows, 16);
    std::vector<float> scanned_y(T * m.view.rows), unscanned_y(scanned_y.size());
    matmul(m.view, x.data(), T, scanned_y.data(), pool);
    matmul(unscanned, x.data(), T, unscanned_y.data(), pool);
    EXPECT_EQ(std::memcmp(scanned_y.data(), unscanned_y.data(), scanned_y.size() * sizeof(float)), 0) << T;
    std::vector<float> scanned_t(T * m.view.cols), unscanned_t(scanned_t.size());
    matmul_transposed(m.view, xt.data(), m.view.rows, T, scanned_t.data(), m.view.cols, false);
    matmul_transposed(unscanned, xt.data(), m.view.rows, T, unscanned_t.data(), m.view.cols, false);
    EXPECT_EQ(std::memcmp(scanned_t.data(), unscanned_t.data(), scanned_t.size() * sizeof(float)), 0) << T;
  }
}

// FP8 products at the edges of FP32's range: tokens from all zeros and 2^-130 to 2^80 in
// magnitude, side by side in one pass, and blocks whose scale is 2^8 or more (decoded through
// the table, not with 2^120 folded into the scale) beside ordinary ones. Each token matches
// double precision, and passes of one token and of all give the same bits.
TEST(MatmulFp8Test, HoldsForAnyInputMagnitudeAndBlockScale) {
  ThreadPool pool(2);
  StoredMatrix m = make_matrix(DType::F8_E4M3, 260, 520, 12);
  const int64_t rows = m.view.rows, cols = m.view.cols, scale_cols = m.view.scale_cols();
  m.scales[0 * scale_cols + 1] = 0x1p8f;   // block rows 0-127, columns 128-255
  m.scales[1 * scale_cols + 4] = 0x1p20f;  // block rows 128-255, columns 512-519 (a partial block)
  m.scales[2 * scale_cols + 0] = 0x1p-60f;
  set_fp8_values(m);
  const std::vector<float> magnitudes = {1.0f, 0.0f, 0x1p-130f, 0x1p-60f, 0x1p60f, 0x1p80f, 3.0f};
  const int64_t T = static_cast<int64_t>(magnitudes.size());
  std::vector<float> x = random_input(T * cols, 13);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t c = 0; c < cols; ++c) x[t * cols + c] *= magnitudes[t];
  std::vector<float> all(static_cast<size_t>(T * rows)), one(all.size());
  matmul(m.view, x.data(), T, all.data(), pool);
  for (int64_t t = 0; t < T; ++t) matmul(m.view, x.data() + t * cols, 1, one.data() + t * rows, pool);
  EXPECT_EQ(std::memcmp(all.data(), one.data(), all.size() * sizeof(float)), 0);
  // (2^-130 times a weight is below FP32's normal range: a product's absolute error is up to
  // half of its smallest subnormal, 2^-150.)
  expect_matches_double(m, x, T, all, double(cols) * 0x1p-150);
}

// A batch of products of different shapes, dtypes and token counts (the decode path and the
// tile path) gives each product's matmul result bit for bit, whatever the thread count.
TEST(MatmulBatchTest, EachJobGivesItsMatmulBits) {
  StoredMatrix a = make_matrix(DType::BF16, 37, 300, 1), b = make_matrix(DType::F8_E4M3, 260, 520, 2),
               c = make_matrix(DType::F32, 5, 64, 3);
  const Matrix slice = b.view.row_slice(100, 61);
  struct Case {
    const Matrix* w;
    int64_t T;
  };
  const std::vector<Case> cases = {{&a.view, 1}, {&b.view, 3}, {&c.view, 7}, {&slice, 1}, {&a.view, 9}};
  std::vector<std::vector<float>> inputs, expected, got;
  std::vector<MatmulJob> jobs;
  ThreadPool one(1), two(2);
  for (size_t i = 0; i < cases.size(); ++i) {
    const Matrix& w = *cases[i].w;
    inputs.push_back(random_input(cases[i].T * w.cols, static_cast<uint32_t>(10 + i)));
    expected.emplace_back(static_cast<size_t>(cases[i].T * w.rows));
    matmul(w, inputs[i].data(), cases[i].T, expected[i].data(), one);
  }
  for (ThreadPool* pool : {&one, &two}) {
    got.assign(cases.size(), {});
    jobs.clear();
    for (size_t i = 0; i < cases.size(); ++i) {
      const Matrix& w = *cases[i].w;
      got[i].assign(expected[i].size(), -1.0f);
      jobs.push_back({&w, inputs[i].data(), w.cols, cases[i].T, got[i].data(), w.rows});
    }
    matmul_batch(jobs, *pool);
    for (size_t i = 0; i < cases.size(); ++i)
      EXPECT_EQ(std::memcmp(got[i].data(), expected[i].data(), got[i].size() * sizeof(float)), 0)
          << "job " << i << ", " << pool->size() << " threads";
  }
}

// x rounded to BF16, to nearest with ties to even (finite inputs), written here from the definition.
double bf16_rounded(float x) {
  const uint32_t bits = std::bit_cast<uint32_t>(x);
  const uint32_t rounded = (bits + 0x7FFFu + ((bits >> 16) & 1u)) & 0xFFFF0000u;
  return std::bit_cast<float>(rounded);
}

// x as MatmulInput::kBF16 gives it to the products.
std::vector<double> bf16_input(const std::vector<float>& x) {
  std::vector<double> seen(x.size());
  for (size_t i = 0; i < x.size(); ++i) seen[i] = bf16_rounded(x[i]);
  return seen;
}

// x as MatmulInput::kQ8 gives it to Q8_0 weights, written here from llama.cpp's definition:
// per block of 32, d = max|x| / 127 rounded to F16, q = round(x * (1 / d)) with ties away from
// zero (1 / d of the unrounded d), the value d * q.
std::vector<double> q8_input(const std::vector<float>& x) {
  std::vector<double> seen(x.size());
  for (size_t b = 0; b < x.size(); b += 32) {
    float amax = 0.0f;
    for (size_t i = b; i < b + 32; ++i) amax = std::max(amax, std::fabs(x[i]));
    const float d = amax / 127.0f, inverse = d != 0.0f ? 1.0f / d : 0.0f;
    for (size_t i = b; i < b + 32; ++i) seen[i] = static_cast<double>(static_cast<_Float16>(d)) * std::round(x[i] * inverse);
  }
  return seen;
}

// Products of m and of its row slice [37, 138) for each token count, with x entering as
// `input` makes it, against double-precision sums of the decoded weights times `seen`(x),
// within `roundings` FP32 roundings of the sum of the products' magnitudes.
void expect_input_products(const StoredMatrix& m, std::initializer_list<int64_t> token_counts, MatmulInput input,
                           std::vector<double> (*seen)(const std::vector<float>&), int64_t roundings) {
  ThreadPool pool(2);
  for (const Matrix& w : {m.view, m.view.row_slice(37, 101)}) {
    const int64_t first = w.data == m.view.data ? 0 : 37;
    for (int64_t T : token_counts) {
      std::vector<float> x = random_input(T * w.cols, static_cast<uint32_t>(T));
      const std::vector<double> x_seen = seen(x);
      std::vector<float> y(static_cast<size_t>(T * w.rows));
      matmul(w, x.data(), T, y.data(), pool, input);
      for (int64_t t = 0; t < T; ++t)
        for (int64_t r = 0; r < w.rows; ++r) {
          double exact = 0, magnitude = 0;
          for (int64_t c = 0; c < w.cols; ++c) {
            const double p = m.values[(first + r) * w.cols + c] * x_seen[t * w.cols + c];
            exact += p;
            magnitude += std::fabs(p);
          }
          expect_close(y[t * w.rows + r], exact, magnitude, roundings);
        }
    }
  }
}

void expect_bf16_input_products(const StoredMatrix& m, std::initializer_list<int64_t> token_counts) {
  expect_input_products(m, token_counts, MatmulInput::kBF16, bf16_input, m.view.cols);
}

// For BF16 weights (the dot-product instruction where the CPU has it, for 1-4 tokens) and the
// other dtypes, odd sizes, row slices, few and many tokens.
TEST_P(MatmulTest, Bf16InputsMatchTheRoundedProducts) {
  expect_bf16_input_products(make_matrix(GetParam(), 150, 333, 21), {1, 3, 4, 6});
}

// Passes of more than 4 tokens with BF16 or FP8 weights whose rows are a multiple of 32 long
// run on AMX tiles where the CPU has them (the kernel variant says whether this one does; without,
// the same checks test the vector path): 16-row tiles with the rest rows on the vector path,
// a partial last FP8 block (352 = 2 x 128 + 96 columns), a row slice whose 16-row tiles
// straddle FP8 scale blocks, one and several 16-token groups, more than 128 tokens.
TEST(MatmulAmxTest, Bf16InputsMatchTheRoundedProducts) {
  std::cout << "kernels " << cpu_kernels().name << ", AMX tiles " << (cpu_kernels().amx_usable() ? "used" : "not used")
            << "\n";
  for (DType dtype : {DType::BF16, DType::F8_E4M3})
    expect_bf16_input_products(make_matrix(dtype, 150, 352, 23), {5, 16, 33, 150});
}

// FP8 weights with rows a multiple of 128 long meet BF16 x in the CPU's BF16 dot-product
// instruction for passes of 1-4 tokens (codes turned into BF16 by table lookups, where the
// CPU has AVX512-VBMI and AVX512-BF16), with the block scales applied per 128 columns.
TEST(MatmulFp8Bf16Test, FewTokensMatchTheRoundedProducts) {
  expect_bf16_input_products(make_matrix(DType::F8_E4M3, 150, 384, 29), {1, 2, 3, 4});
}

// Both FP8 paths with BF16 x (lookups for 1-4 tokens, AMX tiles for more) keep E4M3's
// subnormal codes (which BF16 holds as normal numbers) and NaN codes: 32 rows of 128 codes,
// scale 1, x all ones; row r holds code r (0x00-0x07 are 0 and the subnormals k * 2^-9),
// except row 9 with a NaN code in its last column.
TEST(MatmulFp8Bf16Test, SubnormalAndNanCodes) {
  ThreadPool pool(1);
  const int64_t rows = 32, cols = 128;
  std::vector<uint8_t> codes(rows * cols);
  for (int64_t r = 0; r < rows; ++r) std::fill_n(codes.begin() + r * cols, cols, static_cast<uint8_t>(r));
  codes[9 * cols + cols - 1] = 0xFF;
  const float scale = 1.0f;
  const Matrix w{DType::F8_E4M3, rows, cols, codes.data(), &scale, 0};
  for (int64_t T : {1, 8}) {
    std::vector<float> x(T * cols, 1.0f), y(T * rows);
    matmul(w, x.data(), T, y.data(), pool, MatmulInput::kBF16);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t r = 0; r < rows; ++r) {
        if (r == 9) {
          EXPECT_TRUE(std::isnan(y[t * rows + r])) << T << " tokens";
        } else {
          EXPECT_EQ(y[t * rows + r], cols * e4m3_to_f32(static_cast<uint8_t>(r))) << "code " << r << ", T " << T;
        }
      }
  }
}

// A row's result does not depend on how many rows the product has: attention scores a query
// against a cache that grows a row per token, so a row first sits in a partial block of rows,
// later in a whole one. (GCC tuned for AMD Zen split FMA chains into a multiply and an add
// in some of these loops but not in others, and these differed; CMakeLists.txt turns that off.)
TEST_P(MatmulTest, ARowsResultDoesNotDependOnTheRowCount) {
  const int64_t n = 12;      // rows of the matrix, and tokens of the reference pass
  const int64_t cols = 40;  // the tiny preset's latent and rope columns: no tail with 8 lanes, one with 16
  StoredMatrix m = make_matrix(GetParam(), n, cols, 21);
  std::vector<float> x = random_input(n * cols, 22);
  std::vector<float> all(static_cast<size_t>(n * n));
  matmul_rows(m.view, x.data(), cols, n, all.data(), n, 0, n);
  for (int64_t T : {1, 2, 3, 4, 5})
    for (int64_t rows = 1; rows <= n; ++rows) {
      std::vector<float> y(static_cast<size_t>(T * rows));
      matmul_rows(m.view.row_slice(0, rows), x.data(), cols, T, y.data(), rows, 0, rows);
      for (int64_t t = 0; t < T; ++t)
        for (int64_t r = 0; r < rows; ++r)
          ASSERT_EQ(y[t * rows + r], all[t * n + r]) << T << " tokens, " << rows << " rows: token " << t << ", row " << r;
    }
}

INSTANTIATE_TEST_SUITE_P(AllDtypes, MatmulTest,
                         ::testing::Values(DType::F32, DType::BF16, DType::F16, DType::F8_E4M3),
                         [](const auto& param_info) { return std::string(dtype_name(param_info.param)); });

// Q8_0 (GGUF) weights: passes of 1-4 tokens decode the blocks in registers, larger ones
// through the tile; both give the same bits, and the products match the block definition
// (x = d * q, d an F16) computed here in double.
TEST(MatmulQ8_0Test, RegistersAndTileAgreeAndMatchTheBlocks) {
  const int64_t rows = 300, cols = 1120;  // two full 512-column tiles and a partial one
  const StoredMatrix stored = make_matrix(DType::Q8_0, rows, cols, 3);
  const std::vector<double>& values = stored.values;
  const Matrix full = stored.view;
  ThreadPool pool(2);
  for (const Matrix& m : {full, full.row_slice(133, 150)}) {
    const int64_t first = m.data == full.data ? 0 : 133, T = 11;
    std::vector<float> x = random_input(T * cols, 4);
    std::vector<float> all(static_cast<size_t>(T * m.rows)), part(all.size());
    matmul(m, x.data(), T, all.data(), pool);
    for (int64_t chunk : {1, 2, 3, 4}) {
      for (int64_t t = 0; t < T; t += chunk)
        matmul(m, x.data() + t * cols, std::min(chunk, T - t), part.data() + t * m.rows, pool);
      EXPECT_EQ(std::memcmp(all.data(), part.data(), all.size() * sizeof(float)), 0) << "passes of " << chunk;
    }
    for (int64_t t = 0; t < T; ++t)
      for (int64_t r = 0; r < m.rows; ++r) {
        double exact = 0, magnitude = 0;
        for (int64_t c = 0; c < cols; ++c) {
          exact += values[(first + r) * cols + c] * x[t * cols + c];
          magnitude += std::fabs(values[(first + r) * cols + c] * x[t * cols + c]);
        }
        ASSERT_NEAR(part[t * m.rows + r], exact, 1e-6 * magnitude + 1e-6) << t << " " << r;
      }
  }
}

// 150 rows of Q8_0 weights with a -128 in row 40 (which llama.cpp's quantiser never writes).
StoredMatrix q8_0_matrix_with_minus_128(int64_t cols, uint32_t seed) {
  StoredMatrix m = make_matrix(DType::Q8_0, 150, cols, seed);
  uint8_t* block = &m.bytes[40 * dtype_row_bytes(DType::Q8_0, cols) + 3 * 34];  // row 40, block 3
  block[2 + 5] = 0x80;
  uint16_t d16;
  std::memcpy(&d16, block, 2);
  m.values[40 * cols + 3 * 32 + 5] = static_cast<double>(std::bit_cast<_Float16>(d16)) * -128.0;
  return m;
}

// MatmulInput::kBF16 with Q8_0 weights (rows a multiple of 64 long: the values' magnitudes
// looked up as BF16, for 1-4 tokens, where the CPU has AVX512-VBMI and AVX512-BF16) matches
// the blocks' values times the rounded x; a -128 (which the lookup cannot take; llama.cpp's
// quantiser never writes one) sends its rows to the float path, with the same results.
TEST(MatmulQ8_0Test, Bf16InputsMatchTheRoundedProducts) {
  const StoredMatrix m = q8_0_matrix_with_minus_128(1152, 31);
  expect_bf16_input_products(m, {1, 2, 3, 4, 6, 40});
}

// MatmulInput::kQ8 with Q8_0 weights (rows a multiple of 64 long), passes of up to 32 tokens:
// the quantised x times the blocks' values, a -128 among them, the integer sums exact (so the
// bound counts the roundings of the scaling, of the sums of 64-column pieces and of the lanes:
// 2 + cols / 64 + 4 < cols / 16), each token's bits the same in passes of any such size; a
// token with a value that is not finite gets non-finite results and leaves the others' alone.
// Passes of more tokens and weights of other dtypes take x as kBF16 does, bit for bit.
TEST(MatmulQ8_0Test, Q8InputsMatchTheQuantisedProducts) {
  const int64_t cols = 1152;
  const StoredMatrix m = q8_0_matrix_with_minus_128(cols, 37);
  expect_input_products(m, {1, 2, 3, 4, 5, 11}, MatmulInput::kQ8, q8_input, cols / 16);

  ThreadPool pool(2);
  {
    const int64_t T = 32;
    const std::vector<float> x = random_input(T * cols, 7);
    std::vector<float> all(T * m.view.rows), part(all.size());
    matmul(m.view, x.data(), T, all.data(), pool, MatmulInput::kQ8);
    for (int64_t t = 0; t < T; t += 5)
      matmul(m.view, x.data() + t * cols, std::min<int64_t>(5, T - t), part.data() + t * m.view.rows, pool,
             MatmulInput::kQ8);
    EXPECT_EQ(std::memcmp(all.data(), part.data(), all.size() * sizeof(float)), 0) << "passes of 5 and of 32";
  }
  for (int64_t T : {1, 3}) {
    std::vector<float> x = random_input(T * cols, 5), y(T * m.view.rows);
    x[(T - 1) * cols + 700] = std::numeric_limits<float>::infinity();
    matmul(m.view, x.data(), T, y.data(), pool, MatmulInput::kQ8);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t r = 0; r < m.view.rows; ++r)
        ASSERT_EQ(std::isfinite(y[t * m.view.rows + r]), t < T - 1) << T << " tokens, token " << t << ", row " << r;
  }

  const StoredMatrix fp8 = make_matrix(DType::F8_E4M3, 150, 384, 41);
  for (const StoredMatrix* w : {&m, &fp8})
    for (int64_t T : {1, 4, 9, 33}) {
      if (w == &m && T <= 32) continue;
      const std::vector<float> x = random_input(T * w->view.cols, 6);
      std::vector<float> q8(T * w->view.rows), bf16(q8.size());
      matmul(w->view, x.data(), T, q8.data(), pool, MatmulInput::kQ8);
      matmul(w->view, x.data(), T, bf16.data(), pool, MatmulInput::kBF16);
      EXPECT_EQ(std::memcmp(q8.data(), bf16.data(), q8.size() * sizeof(float)), 0)
          << dtype_name(w->view.dtype) << ", " << T << " tokens";
    }
}

}  // namespace
}  // namespace dsv3
