#include "kernels/cpu/amx_matmul.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "kernels/cpu/bf16_lookup.h"  // defines DSV3_BF16_LOOKUP where the CPU has the lookup
#if defined(__AMX_TILE__) && defined(__AMX_BF16__) && defined(__AVX512BF16__) && defined(DSV3_BF16_LOOKUP)
#define DSV3_AMX 1
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "tensor/block_quant.h"

namespace dsv3 {

namespace {
constexpr int64_t kStepCols = 32;                   // columns of one tile instruction
constexpr int64_t kSteps = kFp8BlockSize / kStepCols;  // instructions per 128-column block
}  // namespace

int64_t amx_packed_words(int64_t T, int64_t cols) {
  return (T + kAmxTokens - 1) / kAmxTokens * kAmxTokens * (cols / 2);
}

void amx_pack_input(const uint16_t* x, int64_t T, int64_t cols, uint32_t* packed) {
  const int64_t groups = (T + kAmxTokens - 1) / kAmxTokens, pairs = cols / 2;
  for (int64_t g = 0; g < groups; ++g)
    for (int64_t p = 0; p < pairs; ++p) {
      // Step p / 16 of group g, row p % 16: one column pair per token.
      uint32_t* row = packed + ((g * (cols / kStepCols) + p / 16) * 16 + p % 16) * kAmxTokens;
      for (int64_t i = 0; i < kAmxTokens; ++i) {
        const int64_t t = g * kAmxTokens + i;
        row[i] = t < T ? x[t * cols + 2 * p] | uint32_t{x[t * cols + 2 * p + 1]} << 16 : 0;
      }
    }
}

#ifdef DSV3_AMX

bool amx_usable() {
  // Linux hands out the tile registers' state only on request (ARCH_REQ_XCOMP_PERM for
  // XFEATURE_XTILEDATA), once per process.
  static const bool usable = __builtin_cpu_supports("amx-bf16") && syscall(SYS_arch_prctl, 0x1023, 18) == 0;
  return usable;
}

namespace {

// Every tile 16 rows of 64 bytes: 16 weight rows of 32 BF16 values, 16 column pairs of 16
// tokens, or 16x16 FP32 sums. Which tile holds what is said where they are used.
struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t bytes_per_row[16] = {};
  uint8_t rows[16] = {};
};

void configure_tiles() {
  TileConfig config;
  for (int i = 0; i < 8; ++i) {
    config.rows[i] = 16;
    config.bytes_per_row[i] = 64;
  }
  _tile_loadconfig(&config);
}

// Tile registers are named by constants, hence the switches.
void load_weights(int64_t step, const void* p, int64_t stride) {
  switch (step) {
    case 0: _tile_loadd(0, p, stride); break;
    case 1: _tile_loadd(1, p, stride); break;
    case 2: _tile_loadd(2, p, stride); break;
    default: _tile_loadd(3, p, stride); break;
  }
}

// Sums of one step for one group of tokens (x0) or two (x0 and x1).
void multiply_step(int64_t step, const uint32_t* x0, const uint32_t* x1) {
  _tile_loadd(4, x0, 64);
  if (x1) _tile_loadd(5, x1, 64);
  switch (step) {
    case 0: _tile_dpbf16ps(6, 0, 4); if (x1) _tile_dpbf16ps(7, 0, 5); break;
    case 1: _tile_dpbf16ps(6, 1, 4); if (x1) _tile_dpbf16ps(7, 1, 5); break;
    case 2: _tile_dpbf16ps(6, 2, 4); if (x1) _tile_dpbf16ps(7, 2, 5); break;
    default: _tile_dpbf16ps(6, 3, 4); if (x1) _tile_dpbf16ps(7, 3, 5); break;
  }
}

// E4M3 codes of 16 rows, `steps` x 32 columns from `codes` on, as their exact BF16 values
// (bf16_lookup.h: subnormals exact, NaN codes stay NaN).
constexpr int64_t kPrefetchFrom = 256;
void decode_fp8(const uint8_t* codes, int64_t row_bytes, int64_t steps, uint16_t (*out)[16][kStepCols]) {
  const Bf16ByteTables& tables = e4m3_tables();
  for (int64_t n = 0; n < 16; ++n) {
    // Rows are short streams: the next blocks' lines are asked for now.
    for (int64_t ahead = kPrefetchFrom; ahead < kPrefetchFrom + 128; ahead += 64)
      __builtin_prefetch(codes + n * row_bytes + ahead);
    for (int64_t s = 0; s < steps; ++s) {
      const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes + n * row_bytes + s * kStepCols));
      _mm512_storeu_si512(out[s][n], bf16_lookup_32(tables, q, q));
    }
  }
}

// BF16 weights carry no block scales, so their sums stay in the tiles over all columns:
// 16-row tiles at `rows` (tile 0) and, with two_row_tiles, 16 rows further (tile 1); 16-token
// groups at x (tile 2) and, with two_groups, the next one (tile 3); sums in tiles 4-7, then
// in sums: [row tile][group][16 rows][16 tokens].
void bf16_tiles(const uint16_t* rows, int64_t cols, bool two_row_tiles, const uint32_t* x, bool two_groups,
                float (*sums)[2][16][kAmxTokens]) {
  const int64_t steps = cols / kStepCols, group_words = steps * 16 * kAmxTokens;
  _tile_zero(4);
  _tile_zero(5);
  _tile_zero(6);
  _tile_zero(7);
  for (int64_t s = 0; s < steps; ++s) {
    _tile_loadd(0, rows + s * kStepCols, 2 * cols);
    _tile_loadd(2, x + s * 16 * kAmxTokens, 64);
    _tile_dpbf16ps(4, 0, 2);
    if (two_groups) {
      _tile_loadd(3, x + group_words + s * 16 * kAmxTokens, 64);
      _tile_dpbf16ps(5, 0, 3);
    }
    if (two_row_tiles) {
      _tile_loadd(1, rows + 16 * cols + s * kStepCols, 2 * cols);
      _tile_dpbf16ps(6, 1, 2);
      if (two_groups) _tile_dpbf16ps(7, 1, 3);
    }
  }
  _tile_stored(4, sums[0][0], 64);
  _tile_stored(5, sums[0][1], 64);
  _tile_stored(6, sums[1][0], 64);
  _tile_stored(7, sums[1][1], 64);
}

// BF16 weights: row tiles in pairs, token groups in pairs, all columns in the tiles.
void bf16_rows(const Matrix& W, const uint32_t* packed, int64_t T, float* y, int64_t y_stride, int64_t row_begin,
               int64_t row_end) {
  const int64_t groups = (T + kAmxTokens - 1) / kAmxTokens, group_words = W.cols / kStepCols * 16 * kAmxTokens;
  alignas(64) float sums[2][2][16][kAmxTokens];
  for (int64_t r0 = row_begin; r0 < row_end; r0 += 2 * kAmxRows) {
    const int64_t row_tiles = r0 + 2 * kAmxRows <= row_end ? 2 : 1;
    for (int64_t g = 0; g < groups; g += 2) {
      const int64_t pair = g + 1 < groups ? 2 : 1;
      bf16_tiles(static_cast<const uint16_t*>(W.data) + r0 * W.cols, W.cols, row_tiles == 2, packed + g * group_words,
                 pair == 2, sums);
      for (int64_t h = 0; h < row_tiles; ++h)
        for (int64_t k = 0; k < pair; ++k)
          for (int64_t t = (g + k) * kAmxTokens; t < std::min(T, (g + k + 1) * kAmxTokens); ++t)
            for (int64_t n = 0; n < 16; ++n) y[t * y_stride + r0 + h * kAmxRows + n] = sums[h][k][n][t % kAmxTokens];
    }
  }
}

constexpr int64_t kGroupTokens = 128;  // FP8: tokens summed per pass over a row tile's weights

// FP8 weights: per 16-row tile and 128-column block, the codes decoded once into tiles 0-3,
// used for every token group (tiles 4 and 5, two at a time), each group's block sums
// (tiles 6 and 7) promoted with the block's scales.
void fp8_rows(const Matrix& W, const uint32_t* packed, int64_t T, float* y, int64_t y_stride, int64_t row_begin,
              int64_t row_end) {
  const int64_t cols = W.cols, steps = cols / kStepCols, groups = (T + kAmxTokens - 1) / kAmxTokens;
  alignas(64) uint16_t decoded[kSteps][16][kStepCols];
  alignas(64) float sums[2][16][kAmxTokens];
  alignas(64) float acc[16][kGroupTokens];
  float scale[16];
  for (int64_t r0 = row_begin; r0 < row_end; r0 += kAmxRows) {
    for (int64_t g0 = 0; g0 < groups; g0 += kGroupTokens / kAmxTokens) {
      const int64_t g1 = std::min(groups, g0 + kGroupTokens / kAmxTokens);
      for (auto& row : acc) std::fill(row, row + (g1 - g0) * kAmxTokens, 0.0f);
      for (int64_t b = 0; b * kFp8BlockSize < cols; ++b) {
        const int64_t first = b * kSteps, count = std::min(kSteps, steps - first);
        decode_fp8(static_cast<const uint8_t*>(W.data) + r0 * cols + first * kStepCols, cols, count, decoded);
        for (int64_t n = 0; n < 16; ++n)
          scale[n] = W.row_scales(r0 + n)[b];
        for (int64_t s = 0; s < count; ++s) load_weights(s, decoded[s], 2 * kStepCols);
        for (int64_t g = g0; g < g1; g += 2) {
          const bool pair = g + 1 < g1;
          _tile_zero(6);
          if (pair) _tile_zero(7);
          for (int64_t s = 0; s < count; ++s) {
            const uint32_t* x0 = packed + (g * steps + first + s) * 16 * kAmxTokens;
            multiply_step(s, x0, pair ? x0 + steps * 16 * kAmxTokens : nullptr);
          }
          _tile_stored(6, sums[0], 64);
          if (pair) _tile_stored(7, sums[1], 64);
          // The block's sums promoted into the FP32 results, times the block's scale.
          for (int64_t h = 0; h < (pair ? 2 : 1); ++h)
            for (int64_t n = 0; n < 16; ++n) {
              float* a = acc[n] + (g - g0 + h) * kAmxTokens;
              _mm512_storeu_ps(a, _mm512_fmadd_ps(_mm512_set1_ps(scale[n]), _mm512_loadu_ps(sums[h][n]),
                                                  _mm512_loadu_ps(a)));
            }
        }
      }
      for (int64_t t = g0 * kAmxTokens; t < std::min(T, g1 * kAmxTokens); ++t)
        for (int64_t n = 0; n < 16; ++n) y[t * y_stride + r0 + n] = acc[n][t - g0 * kAmxTokens];
    }
  }
}

// Q8_0 weights: a 32-column step is one block per row, each with its own scale, so every
// step's sums are promoted: per 16-row tile the values are first turned into BF16 (exact:
// 8-bit integers) for all columns, then each pair of token groups (tiles 4 and 5) runs the
// steps, its sums (tiles 6 and 7) added into FP32 times the rows' block scales.
void q8_0_rows(const Matrix& W, const uint32_t* packed, int64_t T, float* y, int64_t y_stride, int64_t row_begin,
               int64_t row_end) {
  const int64_t cols = W.cols, steps = cols / kStepCols, groups = (T + kAmxTokens - 1) / kAmxTokens;
  thread_local std::vector<uint16_t> values;  // [16][cols]
  thread_local std::vector<float> scales;     // [16][steps]
  values.resize(static_cast<size_t>(16 * cols));
  scales.resize(static_cast<size_t>(16 * steps));
  alignas(64) float sums[2][16][kAmxTokens];
  alignas(64) float acc[2][16][kAmxTokens];
  for (int64_t r0 = row_begin; r0 < row_end; r0 += kAmxRows) {
    for (int64_t n = 0; n < 16; ++n) {
      const uint8_t* row = static_cast<const uint8_t*>(W.data) + (r0 + n) * W.row_bytes();
      for (int64_t s = 0; s < steps; ++s) {
        const uint8_t* block = row + s * kQ8_0BlockBytes;
        scales[n * steps + s] = q8_0_scale(block);
        const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block + 2));
        const __m512i lo_ints = _mm512_maskz_cvtepi8_epi32(0xFFFF, _mm256_castsi256_si128(q));
        const __m512i hi_ints = _mm512_maskz_cvtepi8_epi32(0xFFFF, _mm256_extracti128_si256(q, 1));
        const __m512 lo = _mm512_maskz_cvtepi32_ps(0xFFFF, lo_ints), hi = _mm512_maskz_cvtepi32_ps(0xFFFF, hi_ints);
        _mm512_storeu_si512(&values[n * cols + s * kStepCols], reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(hi, lo)));
      }
    }
    for (int64_t g = 0; g < groups; g += 2) {
      const int64_t pair = g + 1 < groups ? 2 : 1;
      std::fill(&acc[0][0][0], &acc[0][0][0] + 2 * 16 * kAmxTokens, 0.0f);
      for (int64_t s = 0; s < steps; ++s) {
        _tile_loadd(0, &values[s * kStepCols], 2 * cols);
        const uint32_t* x0 = packed + (g * steps + s) * 16 * kAmxTokens;
        _tile_zero(6);
        _tile_loadd(4, x0, 64);
        _tile_dpbf16ps(6, 0, 4);
        if (pair == 2) {
          _tile_zero(7);
          _tile_loadd(5, x0 + steps * 16 * kAmxTokens, 64);
          _tile_dpbf16ps(7, 0, 5);
        }
        _tile_stored(6, sums[0], 64);
        if (pair == 2) _tile_stored(7, sums[1], 64);
        for (int64_t h = 0; h < pair; ++h)
          for (int64_t n = 0; n < 16; ++n)
            _mm512_storeu_ps(acc[h][n], _mm512_fmadd_ps(_mm512_set1_ps(scales[n * steps + s]),
                                                        _mm512_loadu_ps(sums[h][n]), _mm512_loadu_ps(acc[h][n])));
      }
      for (int64_t h = 0; h < pair; ++h)
        for (int64_t t = (g + h) * kAmxTokens; t < std::min(T, (g + h + 1) * kAmxTokens); ++t)
          for (int64_t n = 0; n < 16; ++n) y[t * y_stride + r0 + n] = acc[h][n][t % kAmxTokens];
    }
  }
}

}  // namespace

void amx_matmul_rows(const Matrix& W, const uint32_t* packed, int64_t T, float* y, int64_t y_stride,
                     int64_t row_begin, int64_t row_end) {
  configure_tiles();
  if (W.dtype == DType::BF16) {
    bf16_rows(W, packed, T, y, y_stride, row_begin, row_end);
  } else if (W.dtype == DType::F8_E4M3) {
    fp8_rows(W, packed, T, y, y_stride, row_begin, row_end);
  } else {
    q8_0_rows(W, packed, T, y, y_stride, row_begin, row_end);
  }
  _tile_release();
}

#else

bool amx_usable() { return false; }

void amx_matmul_rows(const Matrix&, const uint32_t*, int64_t, float*, int64_t, int64_t, int64_t) {
  throw std::logic_error("amx_matmul_rows: this build has no AMX tile code (amx_handles is false)");
}

#endif

bool amx_handles(const Matrix& W) {
  const bool dtype = W.dtype == DType::BF16 || W.dtype == DType::F8_E4M3 || W.dtype == DType::Q8_0;
  return dtype && W.cols % kStepCols == 0 && amx_usable();
}

}  // namespace dsv3
