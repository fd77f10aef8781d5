#include "kernels/cpu/matmul.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>
#include <immintrin.h>

#include "kernels/cpu/amx_matmul.h"
#include "kernels/cpu/bf16_lookup.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/vec.h"
#include "tensor/block_quant.h"
#include "tensor/fp8.h"

namespace dsv3 {

namespace {

using simd::hsum;
using simd::kLanes;
using simd::load;
using simd::vf;
using simd::broadcast;

typedef uint32_t vu32 __attribute__((vector_size(kLanes * 4)));
typedef int32_t vi32 __attribute__((vector_size(kLanes * 4)));

inline vf bits_to_vf(vu32 bits) {
  vf f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// kLanes unsigned 16-bit integers widened to 32 bits, one instruction with AVX-512 or AVX2,
// interleaving with zeros on SSE2. (GCC 12 scalarises __builtin_convertvector from 8- and
// 16-bit lanes, and a plain loop over 8 lanes on SSE2.)
inline vu32 widen(const uint16_t* p) {
#if defined(__AVX512F__)
  return reinterpret_cast<vu32>(_mm512_maskz_cvtepu16_epi32(0xffff, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))));
#elif defined(__AVX2__)
  return reinterpret_cast<vu32>(_mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
#else
  static_assert(kLanes == 8, "two SSE registers of 4 lanes");
  const __m128i words = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)), zero = _mm_setzero_si128();
  const __m128i halves[2] = {_mm_unpacklo_epi16(words, zero), _mm_unpackhi_epi16(words, zero)};
  vu32 v;
  std::memcpy(&v, halves, sizeof v);
  return v;
#endif
}

// kLanes signed 8-bit integers widened to 32 bits (sign-extended); on SSE2 each byte is put in
// the top byte of its lane and shifted down arithmetically.
inline vu32 widen_signed(const int8_t* p) {
#if defined(__AVX512F__)
  return reinterpret_cast<vu32>(_mm512_maskz_cvtepi8_epi32(0xffff, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
#elif defined(__AVX2__)
  return reinterpret_cast<vu32>(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
#else
  static_assert(kLanes == 8, "two SSE registers of 4 lanes");
  const __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
  const __m128i doubled = _mm_unpacklo_epi8(bytes, bytes);
  const __m128i halves[2] = {_mm_srai_epi32(_mm_unpacklo_epi16(doubled, doubled), 24),
                             _mm_srai_epi32(_mm_unpackhi_epi16(doubled, doubled), 24)};
  vu32 v;
  std::memcpy(&v, halves, sizeof v);
  return v;
#endif
}

constexpr int64_t kRowBlock = 4;     // weight rows decoded together
constexpr int64_t kTokenBlock = 4;   // tokens sharing each decoded row
constexpr int64_t kColBlock = 512;   // columns decoded at a time (a multiple of the FP8 block)

// sums[i][r] = hsum(acc[i][r]), 16 at a time where there are 16. Inlined by force: called, it
// kept a tile's accumulators in memory, zeroed there for each block (4 % of a prefill).
template <int64_t kTokens, int64_t kRows>
[[gnu::always_inline]] inline void hsum_each(const vf (&acc)[kTokens][kRows], float (&sums)[kTokens][kRows]) {
  if constexpr (kTokens * kRows == 16) {
    simd::hsum16(reinterpret_cast<const vf(&)[16]>(acc), reinterpret_cast<float(&)[16]>(sums));
  } else {
    for (int64_t i = 0; i < kTokens; ++i)
      for (int64_t r = 0; r < kRows; ++r) sums[i][r] = hsum(acc[i][r]);
  }
}

// Adds the dot products of kRows decoded weight rows (tile, kColBlock apart) with kTokens
// token rows of x over `len` columns into y[t][r], or stores them there for a row's first
// column block (`first`: y then needs no zeroing pass, and 0 + sum is sum, bit for bit, since a
// sum begun at +0 is never -0).
template <int64_t kTokens, int64_t kRows>
void tile_block(const float* tile, const float* x, int64_t x_stride, int64_t len, float* y, int64_t y_stride,
                bool first) {
  const int64_t len_vec = len - len % kLanes;
  vf acc[kTokens][kRows] = {};
  for (int64_t c = 0; c < len_vec; c += kLanes) {
    vf w[kRows];
    for (int64_t r = 0; r < kRows; ++r) w[r] = simd::in_register(load(tile + r * kColBlock + c));
    for (int64_t i = 0; i < kTokens; ++i) {
      const vf xv = simd::in_register(load(x + i * x_stride + c));
      for (int64_t r = 0; r < kRows; ++r) acc[i][r] = simd::fma(w[r], xv, acc[i][r]);
    }
  }
  float sums[kTokens][kRows];
  hsum_each(acc, sums);
  for (int64_t i = 0; i < kTokens; ++i)
    for (int64_t r = 0; r < kRows; ++r) {
      float sum = sums[i][r];
      for (int64_t c = len_vec; c < len; ++c) sum = simd::fma(tile[r * kColBlock + c], x[i * x_stride + c], sum);
      float& out = y[i * y_stride + r];
      out = first ? sum : out + sum;
    }
}

// The same sums for a few tokens (decoding, speculative verification), with the weights
// decoded straight into registers instead of through the tile: each weight is read once
// from memory and never stored. Lane for lane and tail for tail the arithmetic is
// tile_block's, so the results are bitwise the same. For F32, BF16, FP8 and Q8_0 weights.

// Whether rows [row_begin, row_end) of W decode in registers (F16 does not; FP8 only where its
// tensor holds no NaN code, which decode_lanes would turn into a number, and not the blocks with
// a scale of 2^8 or more: decode_row takes those, with its NaN select and its table).
bool decodes_in_registers(const Matrix& W, int64_t row_begin, int64_t row_end) {
  if (W.dtype == DType::F32 || W.dtype == DType::BF16 || W.dtype == DType::Q8_0) return true;
  if (W.dtype != DType::F8_E4M3 || !W.nan_scan || !W.nan_scan->known_clean()) return false;
  const int64_t first = (W.first_row + row_begin) / kFp8BlockSize, last = (W.first_row + row_end - 1) / kFp8BlockSize;
  for (int64_t i = first * W.scale_cols(); i < (last + 1) * W.scale_cols(); ++i)
    if (!std::isfinite(W.scale_inv[i] * 0x1p120f)) return false;
  return true;
}

// kLanes weights of a row from column c on; `scale` is the block's scale broadcast: for FP8
// the column block's times 2^120, as in Matrix::decode_row, for Q8_0 the block's d.
template <DType kType>
inline vf decode_lanes(const void* row, int64_t c, vf scale) {
  if constexpr (kType == DType::F32) {
    return load(static_cast<const float*>(row) + c);
  } else if constexpr (kType == DType::BF16) {
    return bits_to_vf(widen(static_cast<const uint16_t*>(row) + c) << 16);
  } else if constexpr (kType == DType::Q8_0) {
    // d * q as decode_q8_0 computes it (q exact in FP32). kLanes divides the block.
    const uint8_t* block = static_cast<const uint8_t*>(row) + (c / kQ8_0BlockValues) * kQ8_0BlockBytes;
    const vi32 q = reinterpret_cast<vi32>(widen_signed(reinterpret_cast<const int8_t*>(block) + 2 + c % kQ8_0BlockValues));
    return scale * __builtin_convertvector(q, vf);
  } else {
    // Matrix::decode_row's bits in three operations: the code sign-extended and shifted puts
    // exponent and mantissa in FP32's fields under copies of the sign, of which the mask keeps
    // one. NaN codes would decode as numbers here (decodes_in_registers keeps them away).
    const vu32 q = widen_signed(static_cast<const int8_t*>(row) + c) << 20;
    return bits_to_vf(q & 0x87F00000u) * scale;
  }
}

// Row r of W, columns [c0, c1) (c0 a multiple of kLanes), into out: Matrix::decode_row's values
// bit for bit, decoded here in this variant's vectors (decode_row, compiled for any x86-64, took
// a seventh of a BF16 prefill) where decode_lanes can: BF16, Q8_0, and FP8 where
// decodes_in_registers says so (in_registers); F32 copied.
template <DType kType>
void decode_row_in_vectors(const Matrix& W, int64_t r, int64_t c0, int64_t c1, float* out) {
  const uint8_t* row = static_cast<const uint8_t*>(W.data) + r * static_cast<int64_t>(W.row_bytes());
  const float* fp8_scales = kType == DType::F8_E4M3 ? W.row_scales(r) : nullptr;
  const int64_t c_vec = c0 + (c1 - c0) / kLanes * kLanes;
  vf scale = {};
  for (int64_t c = c0; c < c_vec; c += kLanes) {
    if constexpr (kType == DType::Q8_0) {
      if (c % kQ8_0BlockValues == 0) scale = broadcast(q8_0_scale(row + c / kQ8_0BlockValues * kQ8_0BlockBytes));
    } else if constexpr (kType == DType::F8_E4M3) {
      if (c == c0 || c % kFp8BlockSize == 0) scale = broadcast(fp8_scales[c / kFp8BlockSize] * 0x1p120f);
    }
    simd::store(out + (c - c0), decode_lanes<kType>(row, c, scale));
  }
  if (c_vec < c1) W.decode_row(r, c_vec, c1, out + (c_vec - c0));
}

void decode_row_here(const Matrix& W, int64_t r, int64_t c0, int64_t c1, float* out, bool in_registers) {
  switch (W.dtype) {
    case DType::F32: {
      const float* values = static_cast<const float*>(W.data) + r * W.cols;
      std::copy(values + c0, values + c1, out);
      return;
    }
    case DType::BF16: return decode_row_in_vectors<DType::BF16>(W, r, c0, c1, out);
    case DType::Q8_0: return decode_row_in_vectors<DType::Q8_0>(W, r, c0, c1, out);
    case DType::F8_E4M3:
      if (in_registers) return decode_row_in_vectors<DType::F8_E4M3>(W, r, c0, c1, out);
      return W.decode_row(r, c0, c1, out);
    default: return W.decode_row(r, c0, c1, out);
  }
}

// Columns per 64-byte cache line of a row (Q8_0: 68 bytes; near enough for when to prefetch),
// and the byte offset of column c in a row.
template <DType kType>
constexpr int64_t kColsPerLine = kType == DType::F32 ? 16 : kType == DType::BF16 ? 32 : 64;
template <DType kType>
constexpr int64_t column_offset(int64_t c) {
  if constexpr (kType == DType::Q8_0) return c / kQ8_0BlockValues * static_cast<int64_t>(kQ8_0BlockBytes);
  return c * 64 / kColsPerLine<kType>;
}
constexpr int64_t kPrefetchAhead = 1024;  // bytes; decode medians of 6 A/B runs, FP8: 81 (512), 86 (1024, 2048)

// Each row of a block is a short stream (the hardware prefetcher stops at page ends, and a
// small matrix's rows are a few lines long): for each line consumed at byte `offset` of a row,
// the line kPrefetchAhead bytes further is requested, or past the row's end the line as far
// into the same row of the next block (a block's rows are consecutive in memory), so that
// the next block's rows are on their way when it starts rather than missed all at once.
inline void prefetch_ahead(const void* row_start, int64_t offset, int64_t row_bytes, int64_t block_rows) {
  const int64_t ahead = offset + kPrefetchAhead;
  __builtin_prefetch(static_cast<const uint8_t*>(row_start) +
                     (ahead < row_bytes ? ahead : ahead - row_bytes + block_rows * row_bytes));
}

// kLanes columns from c on: each row's weights decoded in registers, then met by every token.
template <int64_t kTokens, DType kType, int64_t kRows>
[[gnu::always_inline]] inline void direct_step(const void* const (&rows)[kRows], int64_t c, const float* x,
                                               int64_t x_stride, vf (&scale)[kRows],
                                               vf (&acc)[kTokens][kRows]) {
  if constexpr (kType == DType::Q8_0) {
    if (c % kQ8_0BlockValues == 0)  // a block's d, converted once for its lanes
      for (int64_t r = 0; r < kRows; ++r)
        scale[r] = broadcast(q8_0_scale(static_cast<const uint8_t*>(rows[r]) + c / kQ8_0BlockValues * kQ8_0BlockBytes));
  }
  vf w[kRows];
  for (int64_t r = 0; r < kRows; ++r) w[r] = decode_lanes<kType>(rows[r], c, scale[r]);
  for (int64_t i = 0; i < kTokens; ++i) {
    const vf xv = simd::in_register(load(x + i * x_stride + c));
    for (int64_t r = 0; r < kRows; ++r) acc[i][r] = simd::fma(w[r], xv, acc[i][r]);
  }
}

// Stores or adds its sums as tile_block does (`first`). The columns go by cache lines of the
// rows: per line the prefetches, then the line's steps of kLanes, unrolled. (One loop over steps that tested for a new line in each step kept the
// accumulators in memory, a store of each per step.)
template <int64_t kTokens, DType kType, int64_t kRows = kRowBlock>
void direct_block(const Matrix& W, int64_t r0, int64_t c0, int64_t len, const float* x, int64_t x_stride, float* y,
                  int64_t y_stride, bool first) {
  constexpr int64_t kLine = kColsPerLine<kType>;
  const void* rows[kRows];
  const uint8_t* row_starts[kRows];
  const float* block_scales[kRows];  // FP8: each row's scale of column block c0 / kFp8BlockSize
  const int64_t row_bytes = static_cast<int64_t>(W.row_bytes());  // (a call: kept out of the loop)
  for (int64_t r = 0; r < kRows; ++r) {
    const uint8_t* row = static_cast<const uint8_t*>(W.data) + (r0 + r) * row_bytes;
    row_starts[r] = row;
    rows[r] = row + column_offset<kType>(c0);
    if constexpr (kType == DType::F8_E4M3)
      block_scales[r] = W.row_scales(r0 + r) + c0 / kFp8BlockSize;
  }
  const int64_t len_vec = len - len % kLanes;
  vf acc[kTokens][kRows] = {};
  vf scale[kRows] = {};  // FP8: the column block's scale times 2^120; Q8_0: the block's d
  for (int64_t line = 0; line < len_vec; line += kLine) {
    const bool whole_line = line + kLine <= len_vec;
    for (int64_t r = 0; r < kRows; ++r)
      prefetch_ahead(row_starts[r], column_offset<kType>(c0 + line), row_bytes, kRows);
    if constexpr (kType == DType::F8_E4M3) {
      static_assert(kFp8BlockSize % kLine == 0, "a line within one block scale");
      if (line % kFp8BlockSize == 0)
        for (int64_t r = 0; r < kRows; ++r) scale[r] = broadcast(block_scales[r][line / kFp8BlockSize] * 0x1p120f);
    }
    if (whole_line) {  // steps the compiler unrolls, their offsets known
      for (int64_t c = line; c < line + kLine; c += kLanes)
        direct_step<kTokens, kType, kRows>(rows, c, x, x_stride, scale, acc);
    } else {
      for (int64_t c = line; c < len_vec; c += kLanes)
        direct_step<kTokens, kType, kRows>(rows, c, x, x_stride, scale, acc);
    }
  }
  float tail[kRows][kLanes];
  if (len_vec < len)  // (a call per row: skipped when there is no tail, as in every model's shapes)
    for (int64_t r = 0; r < kRows; ++r) W.decode_row(r0 + r, c0 + len_vec, c0 + len, tail[r]);
  float sums[kTokens][kRows];
  hsum_each(acc, sums);
  for (int64_t i = 0; i < kTokens; ++i)
    for (int64_t r = 0; r < kRows; ++r) {
      float sum = sums[i][r];
      for (int64_t c = len_vec; c < len; ++c) sum = simd::fma(tail[r][c - len_vec], x[i * x_stride + c], sum);
      float& out = y[i * y_stride + r];
      out = first ? sum : out + sum;
    }
}

// One or two tokens (decoding, a speculative verification pass) may take 8 rows at once
// (twice the row streams in flight, x loaded once for 8 rows): the same sums as two blocks
// of kRowBlock.
constexpr int64_t kWideRows = 2 * kRowBlock;

// direct_block over `rows` rows from r0: kRowBlock, or kWideRows for one or two tokens.
template <DType kType>
void direct_product(const Matrix& W, int64_t r0, int64_t rows, int64_t c0, int64_t len, const float* x,
                    int64_t x_stride, int64_t T, float* y, int64_t y_stride, bool first) {
  switch (T) {
    case 1:
      return rows == kWideRows ? direct_block<1, kType, kWideRows>(W, r0, c0, len, x, x_stride, y, y_stride, first)
                               : direct_block<1, kType>(W, r0, c0, len, x, x_stride, y, y_stride, first);
    case 2:
      return rows == kWideRows ? direct_block<2, kType, kWideRows>(W, r0, c0, len, x, x_stride, y, y_stride, first)
                               : direct_block<2, kType>(W, r0, c0, len, x, x_stride, y, y_stride, first);
    case 3: return direct_block<3, kType>(W, r0, c0, len, x, x_stride, y, y_stride, first);
    default: return direct_block<4, kType>(W, r0, c0, len, x, x_stride, y, y_stride, first);
  }
}

void direct_product(const Matrix& W, int64_t r0, int64_t rows, int64_t c0, int64_t len, const float* x,
                    int64_t x_stride, int64_t T, float* y, int64_t y_stride, bool first) {
  switch (W.dtype) {
    case DType::F32: return direct_product<DType::F32>(W, r0, rows, c0, len, x, x_stride, T, y, y_stride, first);
    case DType::BF16: return direct_product<DType::BF16>(W, r0, rows, c0, len, x, x_stride, T, y, y_stride, first);
    case DType::Q8_0: return direct_product<DType::Q8_0>(W, r0, rows, c0, len, x, x_stride, T, y, y_stride, first);
    default: return direct_product<DType::F8_E4M3>(W, r0, rows, c0, len, x, x_stride, T, y, y_stride, first);
  }
}

// Decoded tiles of kRowBlock rows (fewer in a group's last), `tiles` of them, their first rows
// at y's columns row_offsets[i]: tile_block over T tokens, each block of tokens meeting every
// tile in turn while its x is in L1. Every (token, row) pair is summed in the same order
// whatever the blocking, so a token's result does not depend on how many tokens share the
// pass or where it sits among them: prefill, one-token decoding and the speculative
// verification pass give bitwise the same numbers.
constexpr int64_t kTileGroup = 4;  // row blocks decoded before x passes over them

// kTokens tokens from x (x_stride apart) against every tile in turn.
template <int64_t kTokens>
void tiles_times_tokens(const float (*tile)[kRowBlock * kColBlock], int64_t tiles, const int64_t* row_offsets,
                        int64_t last_rows, const float* x, int64_t x_stride, int64_t len, float* y, int64_t y_stride,
                        bool first) {
  for (int64_t i = 0; i < tiles; ++i) {
    float* yt = y + row_offsets[i];
    if (i + 1 < tiles || last_rows == kRowBlock) {
      tile_block<kTokens, kRowBlock>(tile[i], x, x_stride, len, yt, y_stride, first);
    } else {
      for (int64_t k = 0; k < kTokens; ++k)
        for (int64_t r = 0; r < last_rows; ++r)
          tile_block<1, 1>(tile[i] + r * kColBlock, x + k * x_stride, x_stride, len, yt + k * y_stride + r, y_stride,
                           first);
    }
  }
}

void tile_product(const float (*tile)[kRowBlock * kColBlock], int64_t tiles, const int64_t* row_offsets,
                  int64_t last_rows, const float* x, int64_t x_stride, int64_t T, int64_t len, float* y,
                  int64_t y_stride, bool first) {
  int64_t t = 0;
  for (; t + kTokenBlock <= T; t += kTokenBlock)
    tiles_times_tokens<kTokenBlock>(tile, tiles, row_offsets, last_rows, x + t * x_stride, x_stride, len,
                                    y + t * y_stride, y_stride, first);
  for (; t < T; ++t)
    tiles_times_tokens<1>(tile, tiles, row_offsets, last_rows, x + t * x_stride, x_stride, len, y + t * y_stride,
                          y_stride, first);
}

#ifdef __AVX512F__
// Two consecutive Q8_0 blocks of a row (64 values, `offset` bytes into it) for the BF16- and
// Q8-input decode kernels: their 64 codes as one vector (prefetching further along the row),
// and their d spread over the halves of 16 FP32 lanes where those kernels land each block's
// sums. (The maskz forms of the inserts: GCC 12 warns of the undefined vector in the plain ones.)
inline __m512i q8_0_pair_codes(const uint8_t* row, int64_t offset, int64_t row_bytes, int64_t block_rows) {
  prefetch_ahead(row, offset, row_bytes, block_rows);
  prefetch_ahead(row, offset + 64, row_bytes, block_rows);
  const uint8_t* blocks = row + offset;
  return _mm512_maskz_inserti64x4(
      0xFF, _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blocks + 2))),
      _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blocks + kQ8_0BlockBytes + 2)), 1);
}
inline __m512 q8_0_pair_scales(const uint8_t* blocks) {
  return _mm512_maskz_insertf32x8(0xFFFF, _mm512_set1_ps(q8_0_scale(blocks)),
                                  _mm256_set1_ps(q8_0_scale(blocks + kQ8_0BlockBytes)), 1);
}
#endif

#ifdef __AVX512BF16__
// MatmulInput::kBF16 with BF16 weights: kRows rows times kTokens rows of BF16 x (xb,
// W.cols apart), all columns, into y. vdpbf16ps adds two products per FP32 lane (inputs'
// subnormals count as zero, as the instruction defines).
template <int64_t kTokens, int64_t kRows = kRowBlock>
void bf16_dot_block(const Matrix& W, int64_t r0, const uint16_t* xb, float* y, int64_t y_stride) {
  const int64_t cols = W.cols, len_vec = cols - cols % 32;
  const uint16_t* rows[kRows];
  for (int64_t r = 0; r < kRows; ++r) rows[r] = static_cast<const uint16_t*>(W.data) + (r0 + r) * cols;
  vf acc[kTokens][kRows] = {};
  for (int64_t c = 0; c < len_vec; c += 32) {
    __m512i w[kRows];
    for (int64_t r = 0; r < kRows; ++r) {
      prefetch_ahead(rows[r], c * 2, cols * 2, kRows);
      w[r] = _mm512_loadu_si512(rows[r] + c);
    }
    for (int64_t i = 0; i < kTokens; ++i) {
      const __m512i xv = simd::in_register(_mm512_loadu_si512(xb + i * cols + c));
      for (int64_t r = 0; r < kRows; ++r) acc[i][r] = _mm512_dpbf16_ps(acc[i][r], (__m512bh)w[r], (__m512bh)xv);
    }
  }
  float sums[kTokens][kRows];
  hsum_each(acc, sums);
  for (int64_t i = 0; i < kTokens; ++i)
    for (int64_t r = 0; r < kRows; ++r) {
      float sum = sums[i][r];
      for (int64_t c = len_vec; c < cols; ++c) sum += bf16_to_f32(rows[r][c]) * bf16_to_f32(xb[i * cols + c]);
      y[i * y_stride + r] = sum;
    }
}

void bf16_dot_product(const Matrix& W, int64_t r0, const uint16_t* xb, int64_t T, float* y, int64_t y_stride) {
  switch (T) {
    case 1: return bf16_dot_block<1>(W, r0, xb, y, y_stride);
    case 2: return bf16_dot_block<2>(W, r0, xb, y, y_stride);
    case 3: return bf16_dot_block<3>(W, r0, xb, y, y_stride);
    default: return bf16_dot_block<4>(W, r0, xb, y, y_stride);
  }
}

// Rows [r0, row_end) of BF16 weights times any number of tokens, as far as whole blocks of
// kRowBlock rows go; returns the first row not done. Groups of 8 row blocks meet the tokens
// four at a time (the group's rows stay in L2, a token block's x in L1). Each (token, row) is
// bf16_dot_block's sum whatever the blocking, so prefill and decoding agree bit for bit.
int64_t bf16_dot_rows(const Matrix& W, int64_t r0, int64_t row_end, const uint16_t* xb, int64_t T, float* y,
                      int64_t y_stride) {
  constexpr int64_t kGroupRows = 8 * kRowBlock;
  if (T == 1)  // (kWideRows at a time, as direct_block takes them for one token)
    for (; r0 + kWideRows <= row_end; r0 += kWideRows) bf16_dot_block<1, kWideRows>(W, r0, xb, y + r0, 0);
  while (r0 + kRowBlock <= row_end) {
    const int64_t group_end = r0 + std::min(kGroupRows, (row_end - r0) / kRowBlock * kRowBlock);
    for (int64_t t = 0; t < T; t += kTokenBlock)
      for (int64_t r = r0; r < group_end; r += kRowBlock)
        bf16_dot_product(W, r, xb + t * W.cols, std::min(kTokenBlock, T - t), y + t * y_stride + r, y_stride);
    r0 = group_end;
  }
  return r0;
}

#ifdef DSV3_BF16_LOOKUP
// MatmulInput::kBF16 with FP8 or Q8_0 weights, passes of 1-4 tokens: each code becomes its
// exact BF16 value by two byte lookups (the high and the low byte, 128-entry tables indexed
// by the code's seven low bits, the sign bit OR-ed in) and meets x in the dot-product
// instruction; the block scales multiply each block's sums as they are added into the FP32
// results.

inline void x_pairs(const uint16_t* x, __m512bh& first, __m512bh& second) {
  alignas(64) static const uint16_t first_order[32] = {0,  1,  2,  3,  4,  5,  6,  7,  16, 17, 18, 19, 20, 21, 22, 23,
                                                       32, 33, 34, 35, 36, 37, 38, 39, 48, 49, 50, 51, 52, 53, 54, 55};
  const __m512i first_index = _mm512_load_si512(first_order);
  const __m512i second_index = _mm512_add_epi16(first_index, _mm512_set1_epi16(8));
  const __m512i x0 = _mm512_loadu_si512(x), x1 = _mm512_loadu_si512(x + 32);
  first = (__m512bh)_mm512_permutex2var_epi16(x0, first_index, x1);
  second = (__m512bh)_mm512_permutex2var_epi16(x0, second_index, x1);
}

// FP8 weights' dot products with BF16 x over `cols` columns (a multiple of 128), kRows rows
// times kTokens tokens, into y; each 128-column block's sums times its row's scale (scales[r]:
// row r's block scales). weights(r, c, first, second) gives row r's 64 values from column c on
// as BF16 in the lookup's order, x(i, c, first, second) token i's in the same order.
template <int64_t kTokens, int64_t kRows, class Weights, class Inputs>
[[gnu::always_inline]] inline void fp8_dots(int64_t cols, const float* const (&scales)[kRows], const Weights& weights,
                                            const Inputs& x, float* y, int64_t y_stride) {
  __m512 acc[kTokens][kRows];
  for (auto& token : acc)
    for (__m512& a : token) a = _mm512_setzero_ps();
  for (int64_t c0 = 0; c0 < cols; c0 += kFp8BlockSize) {
    __m512 block[kTokens][kRows];
    for (auto& token : block)
      for (__m512& b : token) b = _mm512_setzero_ps();
    for (int64_t c = c0; c < c0 + kFp8BlockSize; c += 64) {
      __m512i first[kRows], second[kRows];
      for (int64_t r = 0; r < kRows; ++r) weights(r, c, first[r], second[r]);
      for (int64_t i = 0; i < kTokens; ++i) {
        __m512bh x_first, x_second;
        x(i, c, x_first, x_second);
        for (int64_t r = 0; r < kRows; ++r) {
          block[i][r] = _mm512_dpbf16_ps(block[i][r], (__m512bh)first[r], x_first);
          block[i][r] = _mm512_dpbf16_ps(block[i][r], (__m512bh)second[r], x_second);
        }
      }
    }
    for (int64_t r = 0; r < kRows; ++r) {
      const __m512 scale = _mm512_set1_ps(scales[r][c0 / kFp8BlockSize]);
      for (int64_t i = 0; i < kTokens; ++i) acc[i][r] = _mm512_fmadd_ps(block[i][r], scale, acc[i][r]);
    }
  }
  for (int64_t i = 0; i < kTokens; ++i)
    for (int64_t r = 0; r < kRows; ++r) y[i * y_stride + r] = hsum(reinterpret_cast<const vf&>(acc[i][r]));
}

// FP8 weights, rows a multiple of 128 long: kRows rows from r0 times kTokens rows of BF16 x
// (xb, W.cols apart), all columns, into y; the codes looked up as they stream in.
template <int64_t kTokens, int64_t kRows>
void fp8_dot_block(const Matrix& W, int64_t r0, const uint16_t* xb, float* y, int64_t y_stride) {
  const Bf16ByteTables& tables = e4m3_tables();
  const int64_t cols = W.cols;
  const uint8_t* rows[kRows];
  const float* scales[kRows];
  for (int64_t r = 0; r < kRows; ++r) {
    rows[r] = static_cast<const uint8_t*>(W.data) + (r0 + r) * cols;
    scales[r] = W.row_scales(r0 + r);
  }
  auto weights = [&](int64_t r, int64_t c, __m512i& first, __m512i& second) {
    prefetch_ahead(rows[r], c, cols, kRows);
    const __m512i codes = _mm512_loadu_si512(rows[r] + c);
    bf16_lookup(tables, codes, codes, first, second);
  };
  auto x = [&](int64_t i, int64_t c, __m512bh& first, __m512bh& second) {
    x_pairs(xb + i * cols + c, first, second);
  };
  fp8_dots<kTokens, kRows>(cols, scales, weights, x, y, y_stride);
}

// The same sums for passes of more tokens, with the lookups and x's permutes done once per
// pass instead of once per block of tokens (which made prefill slower than the FP32 path):
// x's pairs for every token first, then per group of rows their BF16 values, in the lookup's
// order, into a tile that every block of tokens meets (fp8_dots with loads for lookups).
//
// Here kRowBlock rows of such BF16 values (tile, cols apart) times kTokens tokens' pairs (x,
// cols apart). (A function of its own: inlined into fp8_tile_rows' loop, it ran prefill at 0.8x.)
template <int64_t kTokens>
void fp8_tile_dots(const uint16_t* tile, const uint16_t* x, int64_t cols, const float* const (&scales)[kRowBlock],
                   float* y, int64_t y_stride) {
  auto weights = [&](int64_t r, int64_t c, __m512i& first, __m512i& second) {
    first = simd::in_register(_mm512_loadu_si512(tile + r * cols + c));
    second = simd::in_register(_mm512_loadu_si512(tile + r * cols + c + 32));
  };
  auto inputs = [&](int64_t i, int64_t c, __m512bh& first, __m512bh& second) {
    first = (__m512bh)_mm512_loadu_si512(x + i * cols + c);
    second = (__m512bh)_mm512_loadu_si512(x + i * cols + c + 32);
  };
  fp8_dots<kTokens, kRowBlock>(cols, scales, weights, inputs, y, y_stride);
}

// Rows [r0, row_end) of FP8 weights (rows a multiple of 128 long) times T tokens, as far as
// whole blocks of kRowBlock rows go; returns the first row not done.
int64_t fp8_tile_rows(const Matrix& W, int64_t r0, int64_t row_end, const uint16_t* xb, int64_t T, float* y,
                      int64_t y_stride) {
  constexpr int64_t kGroupRows = 4 * kRowBlock;
  const int64_t cols = W.cols;
  thread_local std::vector<uint16_t> pairs, tile;  // (grown once; prefill only, never decoding)
  pairs.resize(static_cast<size_t>(T * cols));
  tile.resize(static_cast<size_t>(kGroupRows * cols));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t c = 0; c < cols; c += 64) {
      __m512bh first, second;
      x_pairs(xb + t * cols + c, first, second);
      _mm512_storeu_si512(&pairs[t * cols + c], (__m512i)first);
      _mm512_storeu_si512(&pairs[t * cols + c + 32], (__m512i)second);
    }
  const Bf16ByteTables& tables = e4m3_tables();
  while (r0 + kRowBlock <= row_end) {
    const int64_t group_end = r0 + std::min(kGroupRows, (row_end - r0) / kRowBlock * kRowBlock);
    for (int64_t r = r0; r < group_end; ++r) {
      const uint8_t* codes = static_cast<const uint8_t*>(W.data) + r * cols;
      uint16_t* values = &tile[(r - r0) * cols];
      for (int64_t c = 0; c < cols; c += 64) {
        const __m512i code_line = _mm512_loadu_si512(codes + c);
        __m512i first, second;
        bf16_lookup(tables, code_line, code_line, first, second);
        _mm512_storeu_si512(values + c, first);
        _mm512_storeu_si512(values + c + 32, second);
      }
    }
    for (int64_t b = r0; b < group_end; b += kRowBlock) {
      const float* scales[kRowBlock];
      for (int64_t r = 0; r < kRowBlock; ++r) scales[r] = W.row_scales(b + r);
      const uint16_t* rows = &tile[(b - r0) * cols];
      int64_t t = 0;
      for (; t + 2 <= T; t += 2)  // (two tokens: the accumulators of four would not fit the registers)
        fp8_tile_dots<2>(rows, &pairs[t * cols], cols, scales, y + t * y_stride + b, y_stride);
      if (t < T) fp8_tile_dots<1>(rows, &pairs[t * cols], cols, scales, y + t * y_stride + b, y_stride);
    }
    r0 = group_end;
  }
  return r0;
}

// Q8_0 weights, rows a multiple of 64 long: as fp8_dot_block, two 32-value blocks at a time
// (their sums land in separate halves of the FP32 lanes, each half times its block's scale).
// Returns false, with y untouched, when a value is -128 (no 7-bit magnitude; llama.cpp's
// quantiser never writes it): the caller computes those rows from the rounded floats.
template <int64_t kTokens, int64_t kRows>
bool q8_0_dot_block(const Matrix& W, int64_t r0, const uint16_t* xb, float* y, int64_t y_stride) {
  const Bf16ByteTables& tables = int7_tables();
  const int64_t cols = W.cols;
  const uint8_t* rows[kRows];
  const int64_t row_bytes = static_cast<int64_t>(W.row_bytes());  // (a call: kept out of the loop)
  for (int64_t r = 0; r < kRows; ++r) rows[r] = static_cast<const uint8_t*>(W.data) + (r0 + r) * row_bytes;
  __m512 acc[kTokens][kRows];
  for (auto& token : acc)
    for (__m512& a : token) a = _mm512_setzero_ps();
  __mmask64 minus_128 = 0;
  for (int64_t c = 0; c < cols; c += 64) {
    __m512i first[kRows], second[kRows];
    __m512 scale[kRows];
    const int64_t offset = c / kQ8_0BlockValues * kQ8_0BlockBytes;
    for (int64_t r = 0; r < kRows; ++r) {
      const __m512i values = q8_0_pair_codes(rows[r], offset, row_bytes, kRows);
      minus_128 |= _mm512_cmpeq_epi8_mask(values, _mm512_set1_epi8(static_cast<char>(0x80)));
      bf16_lookup(tables, _mm512_abs_epi8(values), values, first[r], second[r]);
      scale[r] = q8_0_pair_scales(rows[r] + offset);
    }
    for (int64_t i = 0; i < kTokens; ++i) {
      __m512bh x_first, x_second;
      x_pairs(xb + i * cols + c, x_first, x_second);
      for (int64_t r = 0; r < kRows; ++r) {
        const __m512 sums = _mm512_dpbf16_ps(_mm512_dpbf16_ps(_mm512_setzero_ps(), (__m512bh)first[r], x_first),
                                             (__m512bh)second[r], x_second);
        acc[i][r] = _mm512_fmadd_ps(sums, scale[r], acc[i][r]);
      }
    }
  }
  if (minus_128) return false;
  for (int64_t i = 0; i < kTokens; ++i)
    for (int64_t r = 0; r < kRows; ++r) y[i * y_stride + r] = hsum(reinterpret_cast<const vf&>(acc[i][r]));
  return true;
}

// One block of rows of either kind; false when a Q8_0 block holds -128.
template <DType kType, int64_t kTokens, int64_t kRows>
bool lookup_dot_block(const Matrix& W, int64_t r0, const uint16_t* xb, float* y, int64_t y_stride) {
  if constexpr (kType == DType::F8_E4M3) {
    fp8_dot_block<kTokens, kRows>(W, r0, xb, y, y_stride);
    return true;
  } else {
    return q8_0_dot_block<kTokens, kRows>(W, r0, xb, y, y_stride);
  }
}

// Rows [r0, row_end) of FP8 (rows a multiple of 128 long) or Q8_0 (of 64) weights, as far as
// whole blocks of 4 rows go; returns the first row not done. One token takes 8 rows at a
// time (more row streams in flight). Q8_0 blocks holding -128 are left to the caller.
template <DType kType>
int64_t lookup_dot_product(const Matrix& W, int64_t r0, int64_t row_end, const uint16_t* xb, int64_t T, float* y,
                           int64_t y_stride) {
  if (T == 1)
    for (; r0 + 8 <= row_end; r0 += 8)
      if (!lookup_dot_block<kType, 1, 8>(W, r0, xb, y + r0, y_stride)) return r0;
  for (; r0 + 4 <= row_end; r0 += 4) {
    bool done = false;
    switch (T) {
      case 1: done = lookup_dot_block<kType, 1, 4>(W, r0, xb, y + r0, y_stride); break;
      case 2: done = lookup_dot_block<kType, 2, 4>(W, r0, xb, y + r0, y_stride); break;
      case 3: done = lookup_dot_block<kType, 3, 4>(W, r0, xb, y + r0, y_stride); break;
      default: done = lookup_dot_block<kType, 4, 4>(W, r0, xb, y + r0, y_stride); break;
    }
    if (!done) return r0;
  }
  return r0;
}
#endif
#endif

// MatmulInput::kBF16: x rounded to BF16, as codes for the dot-product instruction and as
// floats for every other case (other weight dtypes, many tokens, a CPU without AVX512-BF16).
void round_to_bf16(const float* x, int64_t x_stride, int64_t T, int64_t cols, uint16_t* codes, float* values) {
  for (int64_t t = 0; t < T; ++t)
    for (int64_t c = 0; c < cols; ++c) {
      const uint16_t h = f32_to_bf16(x[t * x_stride + c]);
      codes[t * cols + c] = h;
      values[t * cols + c] = bf16_to_f32(h);
    }
}

// Rows [row_begin, row_end) of the product with x so rounded ([T][W.cols] both ways).
void rows_with_bf16_input(const Matrix& W, const uint16_t* codes, const float* values, int64_t T, float* y,
                          int64_t y_stride, int64_t row_begin, int64_t row_end) {
  int64_t r0 = row_begin;
#ifdef __AVX512BF16__
  if (W.dtype == DType::BF16) r0 = bf16_dot_rows(W, r0, row_end, codes, T, y, y_stride);
#ifdef DSV3_BF16_LOOKUP
  if (W.dtype == DType::F8_E4M3 && W.cols % kFp8BlockSize == 0)
    r0 = T <= kTokenBlock ? lookup_dot_product<DType::F8_E4M3>(W, r0, row_end, codes, T, y, y_stride)
                          : fp8_tile_rows(W, r0, row_end, codes, T, y, y_stride);
  if (W.dtype == DType::Q8_0 && T <= kTokenBlock && W.cols % 64 == 0)
    r0 = lookup_dot_product<DType::Q8_0>(W, r0, row_end, codes, T, y, y_stride);
#endif
#else
  (void)codes;
#endif
  if (r0 < row_end) cpu_variant::matmul_rows(W, values, W.cols, T, y, y_stride, r0, row_end, MatmulInput::kF32);
}

// MatmulInput::kQ8 with Q8_0 weights: x as Q8_0 blocks, each token's codes (cols of them) and
// per 64 columns 16 lanes of scales, 0-7 the first block's d and 8-15 the second's (the lanes
// of the 32-bit sums that the two blocks' products land in).
struct Q8Input {
  const int8_t* codes;  // [T][cols]
  const float* scales;  // [T][cols / 4]
  int64_t cols;
};

// Passes of up to kQ8MaxTokens: decoding, speculative verification (up to 16 drafts), batches
// of sequences, so that a token's logits do not depend on which of these computes them.
// Larger passes (prefill) take x as kBF16 does: there the BF16 dot products and AMX tiles
// outrun the integer ones, which need a conversion and two scalings per pair of blocks.
constexpr int64_t kQ8MaxTokens = 32;
bool takes_q8_input(const Matrix& W, int64_t T) {
  return W.dtype == DType::Q8_0 && W.cols % 64 == 0 && T <= kQ8MaxTokens;
}

void quantize_input_q8(const float* x, int64_t x_stride, int64_t T, int64_t cols, int8_t* codes, float* scales) {
  for (int64_t t = 0; t < T; ++t)
    for (int64_t c = 0; c < cols; c += kQ8_0BlockValues) {
      const float d = f16_to_f32(quantize_q8_0_block(x + t * x_stride + c, codes + t * cols + c));
      std::fill_n(scales + (t * cols + c) / 4, kQ8_0BlockValues / 4, d);
    }
}

// kRows rows from r0 times the kTokens tokens of the quantised x, all columns, into y.
#ifdef __AVX512VNNI__
// vpdpbusd multiplies unsigned bytes by signed ones: the weights' codes enter as q + 128
// (their sign bit flipped), and each lane starts from -128 times the sum of its four x codes.
template <int64_t kTokens, int64_t kRows>
void q8_dot_block(const Matrix& W, int64_t r0, const Q8Input& x, float* y, int64_t y_stride) {
  const int64_t cols = W.cols;
  const int64_t row_bytes = static_cast<int64_t>(W.row_bytes());  // (a call: kept out of the loop)
  const uint8_t* rows[kRows];
  for (int64_t r = 0; r < kRows; ++r) rows[r] = static_cast<const uint8_t*>(W.data) + (r0 + r) * row_bytes;
  const __m512i bias = _mm512_set1_epi8(static_cast<char>(0x80));
  __m512 acc[kTokens][kRows];
  for (auto& token : acc)
    for (__m512& a : token) a = _mm512_setzero_ps();
  for (int64_t c = 0; c < cols; c += 64) {
    const int64_t offset = c / kQ8_0BlockValues * kQ8_0BlockBytes;
    __m512i biased[kRows];
    __m512 d[kRows];
    for (int64_t r = 0; r < kRows; ++r) {
      biased[r] = _mm512_xor_si512(q8_0_pair_codes(rows[r], offset, row_bytes, kRows), bias);
      d[r] = q8_0_pair_scales(rows[r] + offset);
    }
    for (int64_t i = 0; i < kTokens; ++i) {
      const __m512i xq = _mm512_loadu_si512(x.codes + i * cols + c);
      const __m512i start =
          _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_dpbusd_epi32(_mm512_setzero_si512(), bias, xq));
      const __m512 dx = _mm512_loadu_ps(x.scales + (i * cols + c) / 4);
      for (int64_t r = 0; r < kRows; ++r) {
        const __m512 sums = _mm512_maskz_cvtepi32_ps(0xFFFF, _mm512_dpbusd_epi32(start, biased[r], xq));
        acc[i][r] = _mm512_fmadd_ps(_mm512_mul_ps(sums, dx), d[r], acc[i][r]);
      }
    }
  }
  for (int64_t i = 0; i < kTokens; ++i)
    for (int64_t r = 0; r < kRows; ++r) y[i * y_stride + r] = hsum(reinterpret_cast<const vf&>(acc[i][r]));
}
#else
// Without VNNI: each block's integer sum, times both blocks' d, added in column order.
template <int64_t kTokens, int64_t kRows>
void q8_dot_block(const Matrix& W, int64_t r0, const Q8Input& x, float* y, int64_t y_stride) {
  for (int64_t r = 0; r < kRows; ++r) {
    const uint8_t* row = static_cast<const uint8_t*>(W.data) + (r0 + r) * W.row_bytes();
    for (int64_t i = 0; i < kTokens; ++i) {
      const int8_t* xq = x.codes + i * x.cols;
      float sum = 0.0f;
      for (int64_t c = 0; c < x.cols; c += kQ8_0BlockValues) {
        const uint8_t* block = row + c / kQ8_0BlockValues * kQ8_0BlockBytes;
        int32_t dot = 0;
        for (int64_t k = 0; k < kQ8_0BlockValues; ++k) dot += static_cast<int8_t>(block[2 + k]) * xq[c + k];
        const float dw = q8_0_scale(block);
        sum += static_cast<float>(dot) * x.scales[(i * x.cols + c) / 4] * dw;
      }
      y[i * y_stride + r] = sum;
    }
  }
}
#endif

// kRows rows from r0 times all T tokens, kTokenBlock at a time (the rows stay in L1 meanwhile).
template <int64_t kRows>
void q8_row_block(const Matrix& W, int64_t r0, const Q8Input& x, int64_t T, float* y, int64_t y_stride) {
  for (int64_t t = 0; t < T; t += kTokenBlock) {
    const Q8Input xt{x.codes + t * x.cols, x.scales + t * x.cols / 4, x.cols};
    float* yt = y + t * y_stride + r0;
    switch (std::min(kTokenBlock, T - t)) {
      case 1: q8_dot_block<1, kRows>(W, r0, xt, yt, y_stride); break;
      case 2: q8_dot_block<2, kRows>(W, r0, xt, yt, y_stride); break;
      case 3: q8_dot_block<3, kRows>(W, r0, xt, yt, y_stride); break;
      default: q8_dot_block<4, kRows>(W, r0, xt, yt, y_stride); break;
    }
  }
}

// Rows [row_begin, row_end) of the product with the quantised x (one token takes 8 rows at a
// time: more row streams in flight).
void rows_with_q8_input(const Matrix& W, const Q8Input& x, int64_t T, float* y, int64_t y_stride,
                        int64_t row_begin, int64_t row_end) {
  int64_t r0 = row_begin;
  if (T == 1)
    for (; r0 + 8 <= row_end; r0 += 8) q8_row_block<8>(W, r0, x, T, y, y_stride);
  for (; r0 + kRowBlock <= row_end; r0 += kRowBlock) q8_row_block<kRowBlock>(W, r0, x, T, y, y_stride);
  for (; r0 < row_end; ++r0) q8_row_block<1>(W, r0, x, T, y, y_stride);
}

// y[t][0, width) (+)= sum over `rows` of x[t][r] * w[r][0, kStripCols) for kTokens tokens;
// w rows are w_stride floats apart and kStripCols wide (zero past width), `first` starts
// the sums instead of continuing y's.
constexpr int64_t kStripCols = 4 * kLanes;
template <int64_t kTokens>
void transposed_strip(const float* w, int64_t w_stride, int64_t rows, const float* x, int64_t x_stride, float* y,
                      int64_t y_stride, int64_t width, bool first) {
  constexpr int64_t kVectors = kStripCols / kLanes;
  alignas(64) float partial[kStripCols] = {};
  vf acc[kTokens][kVectors] = {};
  if (!first)
    for (int64_t i = 0; i < kTokens; ++i) {
      std::copy(y + i * y_stride, y + i * y_stride + width, partial);
      for (int64_t j = 0; j < kVectors; ++j) acc[i][j] = load(partial + j * kLanes);
    }
  for (int64_t r = 0; r < rows; ++r) {
    vf wv[kVectors];
    for (int64_t j = 0; j < kVectors; ++j) wv[j] = simd::in_register(load(w + r * w_stride + j * kLanes));
    for (int64_t i = 0; i < kTokens; ++i) {
      const vf xv = broadcast(x[i * x_stride + r]);
      for (int64_t j = 0; j < kVectors; ++j) acc[i][j] = simd::fma(xv, wv[j], acc[i][j]);
    }
  }
  for (int64_t i = 0; i < kTokens; ++i) {
    for (int64_t j = 0; j < kVectors; ++j) simd::store(partial + j * kLanes, acc[i][j]);
    std::copy(partial, partial + width, y + i * y_stride);
  }
}

// n values in an array on the stack when they fit in kStackSize, else on the heap.
template <typename T, int64_t kStackSize>
class Scratch {
 public:
  explicit Scratch(int64_t n) {
    if (n > kStackSize) heap_.resize(static_cast<size_t>(n));
  }
  T* data() { return heap_.empty() ? stack_ : heap_.data(); }

 private:
  T stack_[kStackSize];
  std::vector<T> heap_;
};

// transposed_strip for BF16 or FP8 weights and a few tokens, all rows of W, columns [c0, c0 +
// kVectors * kLanes): each row's weights decoded in registers as decode_row would (bitwise), one
// FMA chain over the rows per y element, as in transposed_strip.
template <int64_t kTokens, int64_t kVectors, DType kType>
void transposed_strip_direct(const Matrix& W, int64_t c0, const float* x, int64_t x_stride, float* y,
                             int64_t y_stride) {
  const int64_t row_bytes = static_cast<int64_t>(W.row_bytes());  // (a call: kept out of the loop)
  vf acc[kTokens][kVectors] = {};
  vf scale[kVectors] = {};  // FP8: each vector's block scale (a wide strip spans blocks)
  for (int64_t r = 0; r < W.rows; ++r) {
    const uint8_t* row = static_cast<const uint8_t*>(W.data) + r * row_bytes;
    if constexpr (kType == DType::F8_E4M3) {
      if (r == 0 || (W.first_row + r) % kFp8BlockSize == 0)
        for (int64_t j = 0; j < kVectors; ++j)
          scale[j] = broadcast(W.row_scales(r)[(c0 + j * kLanes) / kFp8BlockSize] * 0x1p120f);
    }
    vf w[kVectors];
    for (int64_t j = 0; j < kVectors; ++j) w[j] = decode_lanes<kType>(row, c0 + j * kLanes, scale[j]);
    for (int64_t i = 0; i < kTokens; ++i) {
      const vf xv = broadcast(x[i * x_stride + r]);
      for (int64_t j = 0; j < kVectors; ++j) acc[i][j] = simd::fma(xv, w[j], acc[i][j]);
    }
  }
  for (int64_t i = 0; i < kTokens; ++i)
    for (int64_t j = 0; j < kVectors; ++j) simd::store(y + i * y_stride + j * kLanes, acc[i][j]);
}

// The width of transposed_direct's wide strips for T tokens: as many accumulators as the
// registers hold (16 vectors for one token: a decoded token then reads each row of DeepSeek-V3's
// 512-column latent in two pieces, not eight, and the rows of a 256-column one whole, one
// stream over the matrix).
int64_t wide_strip_cols(int64_t T) { return (T == 1 ? 4 : T == 2 ? 2 : 1) * kStripCols; }

// transposed_strip_direct over columns [c0, c0 + width), width kStripCols or wide_strip_cols(T).
template <DType kType>
void transposed_direct(const Matrix& W, int64_t c0, int64_t width, const float* x, int64_t x_stride, int64_t T,
                       float* y, int64_t y_stride) {
  constexpr int64_t kVectors = kStripCols / kLanes;
  const bool wide = width > kStripCols;
  switch (T) {
    case 1:
      return wide ? transposed_strip_direct<1, 4 * kVectors, kType>(W, c0, x, x_stride, y, y_stride)
                  : transposed_strip_direct<1, kVectors, kType>(W, c0, x, x_stride, y, y_stride);
    case 2:
      return wide ? transposed_strip_direct<2, 2 * kVectors, kType>(W, c0, x, x_stride, y, y_stride)
                  : transposed_strip_direct<2, kVectors, kType>(W, c0, x, x_stride, y, y_stride);
    case 3: return transposed_strip_direct<3, kVectors, kType>(W, c0, x, x_stride, y, y_stride);
    default: return transposed_strip_direct<4, kVectors, kType>(W, c0, x, x_stride, y, y_stride);
  }
}

// Requests rows [r0, r1) of W, columns [c0, c1) (the bytes in proportion, for block formats)
// into L2.
void prefetch_to_l2(const Matrix& W, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
  const int64_t row_bytes = static_cast<int64_t>(W.row_bytes());
  const int64_t begin = c0 * row_bytes / W.cols, end = c1 * row_bytes / W.cols;
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* row = static_cast<const uint8_t*>(W.data) + r * row_bytes;
    for (int64_t b = begin; b < end; b += 64) __builtin_prefetch(row + b, 0, 2);
  }
}

// Whether a MatmulInput::kBF16 product runs on AMX tiles: passes of more tokens than the
// decoding path takes, with weights the tiles can read.
bool on_amx(const MatmulJob& job) { return job.T > kTokenBlock && job.W->rows >= kAmxRows && amx_handles(*job.W); }

}  // namespace

// This variant's copy of matmul.h's functions (cpu_kernels.h).
namespace cpu_variant {

void matmul_rows(const Matrix& W, const float* x, int64_t x_stride, int64_t T, float* y, int64_t y_stride,
                 int64_t row_begin, int64_t row_end, MatmulInput input) {
  // The rounded or quantised x on this call's stack for passes of a few tokens (pool threads
  // run these, and a decoded token must allocate nothing), on the heap beyond.
  constexpr int64_t kOnStack = 8192;
  const int64_t n = T * W.cols;
  if (input == MatmulInput::kQ8 && takes_q8_input(W, T)) {
    Scratch<int8_t, kOnStack> codes(n);
    Scratch<float, kOnStack / 4> scales(n / 4);
    quantize_input_q8(x, x_stride, T, W.cols, codes.data(), scales.data());
    return rows_with_q8_input(W, Q8Input{codes.data(), scales.data(), W.cols}, T, y, y_stride, row_begin, row_end);
  }
  if (input != MatmulInput::kF32) {
    Scratch<uint16_t, kOnStack> codes(n);
    Scratch<float, kOnStack> values(n);
    round_to_bf16(x, x_stride, T, W.cols, codes.data(), values.data());
    return rows_with_bf16_input(W, codes.data(), values.data(), T, y, y_stride, row_begin, row_end);
  }
  if (W.cols == 0) {  // no column block to store the sums
    for (int64_t t = 0; t < T; ++t) std::fill(y + t * y_stride + row_begin, y + t * y_stride + row_end, 0.0f);
    return;
  }
  const bool in_registers = row_begin < row_end && decodes_in_registers(W, row_begin, row_end);
  const bool direct = T <= kTokenBlock && in_registers;
  // Passes of many tokens decode kTileGroup row blocks at a time (x then comes from L2 once
  // per group instead of once per block); a few tokens take the rows one block at a time, one
  // or two tokens two blocks at a time.
  const bool wide = direct && T <= 2;
  const int64_t group_rows = wide ? kWideRows : direct ? kRowBlock : kTileGroup * kRowBlock;
  alignas(64) float tile[kTileGroup][kRowBlock * kColBlock];
  int64_t row_offsets[kTileGroup];
  for (int64_t g0 = row_begin; g0 < row_end; g0 += group_rows) {
    const int64_t g1 = std::min(row_end, g0 + group_rows);
    for (int64_t c0 = 0; c0 < W.cols; c0 += kColBlock) {
      const int64_t c1 = std::min(W.cols, c0 + kColBlock);
      int64_t tiles = 0, last_rows = kRowBlock;
      if (wide && g1 - g0 == kWideRows) {
        direct_product(W, g0, kWideRows, c0, c1 - c0, x + c0, x_stride, T, y + g0, y_stride, c0 == 0);
        continue;
      }
      for (int64_t r0 = g0; r0 < g1; r0 += kRowBlock) {
        const int64_t rows = std::min(kRowBlock, g1 - r0);
        if (direct && rows == kRowBlock) {
          direct_product(W, r0, kRowBlock, c0, c1 - c0, x + c0, x_stride, T, y + r0, y_stride, c0 == 0);
          continue;
        }
        for (int64_t r = 0; r < rows; ++r)
          decode_row_here(W, r0 + r, c0, c1, tile[tiles] + r * kColBlock, in_registers);
        row_offsets[tiles++] = r0;
        last_rows = rows;
      }
      if (tiles > 0) {
        // The next group's weights requested while this one meets the tokens (decoding it
        // from memory unrequested took an eighth of a prefill).
        if (c1 < W.cols)
          prefetch_to_l2(W, g0, g1, c1, std::min(W.cols, c1 + kColBlock));
        else if (g1 < row_end)
          prefetch_to_l2(W, g1, std::min(row_end, g1 + group_rows), 0, std::min(W.cols, kColBlock));
        tile_product(tile, tiles, row_offsets, last_rows, x + c0, x_stride, T, c1 - c0, y, y_stride, c0 == 0);
      }
    }
  }
}

void matmul(const Matrix& W, const float* x, int64_t T, float* y, ThreadPool& pool, MatmulInput input) {
  const MatmulJob job{&W, x, W.cols, T, y, W.rows};
  cpu_variant::matmul_batch({&job, 1}, pool, input);
}

void matmul_batch(std::span<const MatmulJob> jobs, ThreadPool& pool, MatmulInput input) {
  // kQ8: x quantised once per job here, for the jobs whose weights take it; kBF16 and the
  // other jobs of kQ8: x rounded once per job, not once per task, and for passes of many
  // tokens with weights the AMX tiles take, also laid out as their operand.
  thread_local std::vector<uint16_t> codes;
  thread_local std::vector<float> values;
  thread_local std::vector<uint32_t> packed;
  thread_local std::vector<int8_t> q8_codes;
  thread_local std::vector<float> q8_scales;
  thread_local std::vector<size_t> offsets, packed_offsets, q8_offsets;
  auto takes_q8 = [&](const MatmulJob& job) { return input == MatmulInput::kQ8 && takes_q8_input(*job.W, job.T); };
  bool any_amx = false;
  if (input != MatmulInput::kF32) {
    offsets.assign(1, 0);
    packed_offsets.assign(1, 0);
    q8_offsets.assign(1, 0);
    for (const MatmulJob& job : jobs) {
      const size_t size = static_cast<size_t>(job.T * job.W->cols);
      const bool q8 = takes_q8(job), amx = !q8 && on_amx(job);
      any_amx |= amx;
      offsets.push_back(offsets.back() + (q8 ? 0 : size));
      packed_offsets.push_back(packed_offsets.back() + (amx ? amx_packed_words(job.T, job.W->cols) : 0));
      q8_offsets.push_back(q8_offsets.back() + (q8 ? size : 0));
    }
    codes.resize(offsets.back());
    values.resize(offsets.back());
    packed.resize(packed_offsets.back());
    q8_codes.resize(q8_offsets.back());
    q8_scales.resize(q8_offsets.back() / 4);
    for (size_t j = 0; j < jobs.size(); ++j) {
      const MatmulJob& job = jobs[j];
      if (takes_q8(job)) {
        quantize_input_q8(job.x, job.x_stride, job.T, job.W->cols, &q8_codes[q8_offsets[j]],
                          &q8_scales[q8_offsets[j] / 4]);
        continue;
      }
      round_to_bf16(job.x, job.x_stride, job.T, job.W->cols, &codes[offsets[j]], &values[offsets[j]]);
      if (packed_offsets[j + 1] > packed_offsets[j])
        amx_pack_input(&codes[offsets[j]], job.T, job.W->cols, &packed[packed_offsets[j]]);
    }
  }
  // Tasks of `chunk` row blocks, about 8 per thread over all jobs (whole AMX tiles when any
  // job runs on them); task i is found by walking the jobs' task counts (a batch holds tens
  // of jobs at most).
  int64_t blocks = 0;
  for (const MatmulJob& job : jobs) blocks += (job.W->rows + kRowBlock - 1) / kRowBlock;
  if (blocks == 0) return;
  const int64_t granule = any_amx ? kAmxRows / kRowBlock : 1;
  const int64_t chunk = std::max<int64_t>(1, blocks / (static_cast<int64_t>(pool.size()) * 8 * granule)) * granule;
  auto tasks_of = [&](const MatmulJob& job) { return (job.W->rows + chunk * kRowBlock - 1) / (chunk * kRowBlock); };
  int64_t tasks = 0;
  for (const MatmulJob& job : jobs) tasks += tasks_of(job);
  // The tasks run on other threads, where these names mean those threads' own buffers.
  const uint16_t* rounded_codes = codes.data();
  const float* rounded_values = values.data();
  const uint32_t* packed_input = packed.data();
  const int8_t* quantised_codes = q8_codes.data();
  const float* quantised_scales = q8_scales.data();
  const size_t* job_offsets = offsets.data();
  const size_t* job_packed_offsets = packed_offsets.data();
  const size_t* job_q8_offsets = q8_offsets.data();
  pool.parallel_for(static_cast<size_t>(tasks), [&](size_t task) {
    int64_t i = static_cast<int64_t>(task);
    for (size_t j = 0; j < jobs.size(); ++j) {
      const MatmulJob& job = jobs[j];
      if (i >= tasks_of(job)) {
        i -= tasks_of(job);
        continue;
      }
      int64_t r0 = i * chunk * kRowBlock;
      const int64_t r1 = std::min(job.W->rows, r0 + chunk * kRowBlock);
      if (input == MatmulInput::kF32)
        return cpu_variant::matmul_rows(*job.W, job.x, job.x_stride, job.T, job.y, job.y_stride, r0, r1, input);
      if (job_q8_offsets[j + 1] > job_q8_offsets[j]) {
        const Q8Input x{quantised_codes + job_q8_offsets[j], quantised_scales + job_q8_offsets[j] / 4, job.W->cols};
        return rows_with_q8_input(*job.W, x, job.T, job.y, job.y_stride, r0, r1);
      }
      if (job_packed_offsets[j + 1] > job_packed_offsets[j]) {
        const int64_t tiled = r0 + (r1 - r0) / kAmxRows * kAmxRows;
        amx_matmul_rows(*job.W, packed_input + job_packed_offsets[j], job.T, job.y, job.y_stride, r0, tiled);
        r0 = tiled;
      }
      if (r0 < r1)
        rows_with_bf16_input(*job.W, rounded_codes + job_offsets[j], rounded_values + job_offsets[j], job.T, job.y,
                             job.y_stride, r0, r1);
      return;
    }
  });
}

void matmul_transposed(const Matrix& W, const float* x, int64_t x_stride, int64_t T, float* y, int64_t cols,
                       bool accumulate) {
  // Column strips of kStripCols, rows in runs of kRunRows (decoded first unless F32 and
  // whole), tokens in fours: each y element is one FMA chain over r = 0, 1, ... whatever
  // the blocking, so a token's result does not depend on the others.
  constexpr int64_t kRunRows = 128;
  if (W.rows == 0) {
    if (!accumulate) std::fill(y, y + T * cols, 0.0f);
    return;
  }
  // A few tokens (decoding) with BF16 or FP8 weights: whole strips, wide ones where they fit,
  // decoded in registers.
  const bool in_registers = decodes_in_registers(W, 0, W.rows);
  const bool direct =
      !accumulate && T <= kTokenBlock && (W.dtype == DType::BF16 || W.dtype == DType::F8_E4M3) && in_registers;
  const int64_t wide_cols = wide_strip_cols(T);
  alignas(64) float decoded[kRunRows * kStripCols];
  for (int64_t c0 = 0, width; c0 < cols; c0 += width) {
    width = c0 + wide_cols <= cols ? wide_cols : kStripCols;
    if (direct && c0 + width <= cols) {
      if (W.dtype == DType::BF16)
        transposed_direct<DType::BF16>(W, c0, width, x, x_stride, T, y + c0, cols);
      else
        transposed_direct<DType::F8_E4M3>(W, c0, width, x, x_stride, T, y + c0, cols);
      continue;
    }
    width = std::min(kStripCols, cols - c0);
    for (int64_t r0 = 0; r0 < W.rows; r0 += kRunRows) {
      const int64_t rows = std::min(kRunRows, W.rows - r0);
      const float* w = static_cast<const float*>(W.data) + r0 * W.cols + c0;
      int64_t w_stride = W.cols;
      if (W.dtype != DType::F32 || width < kStripCols) {
        for (int64_t r = 0; r < rows; ++r) {
          decode_row_here(W, r0 + r, c0, c0 + width, decoded + r * kStripCols, in_registers);
          std::fill(decoded + r * kStripCols + width, decoded + (r + 1) * kStripCols, 0.0f);
        }
        w = decoded;
        w_stride = kStripCols;
      }
      int64_t t = 0;
      for (; t + 4 <= T; t += 4)
        transposed_strip<4>(w, w_stride, rows, x + t * x_stride + r0, x_stride, y + t * cols + c0, cols, width,
                            r0 == 0 && !accumulate);
      for (; t < T; ++t)
        transposed_strip<1>(w, w_stride, rows, x + t * x_stride + r0, x_stride, y + t * cols + c0, cols, width,
                            r0 == 0 && !accumulate);
    }
  }
}

}  // namespace cpu_variant

}  // namespace dsv3
