// Byte codes to their exact BF16 values by table lookup (AVX512-VBMI): the high and the low
// byte of each value from a 128-entry table indexed by the code's seven low bits, the sign
// bit OR-ed in. The one definition of "an E4M3 code (or a Q8_0 integer) as BF16" that the
// BF16-input decode kernels (matmul.cpp) and the AMX tiles (amx_matmul.cpp) share.
#pragma once

#if defined(__AVX512VBMI__) && defined(__AVX512BW__)
#define DSV3_BF16_LOOKUP 1
#include <immintrin.h>

#include <cstdint>

#include "tensor/dtype.h"
#include "tensor/fp8.h"

namespace dsv3 {

// A table's value for each 7-bit index, as the two bytes of its BF16 code.
struct Bf16ByteTables {
  __m512i high[2], low[2];  // entries 0-63 and 64-127 of each byte table
  explicit Bf16ByteTables(float (*value)(int index)) {
    alignas(64) uint8_t hi[128], lo[128];
    for (int index = 0; index < 128; ++index) {
      const uint16_t h = f32_to_bf16(value(index));  // exact for the values used here
      hi[index] = static_cast<uint8_t>(h >> 8);
      lo[index] = static_cast<uint8_t>(h & 0xFF);
    }
    for (int i = 0; i < 2; ++i) {
      high[i] = _mm512_load_si512(hi + 64 * i);
      low[i] = _mm512_load_si512(lo + 64 * i);
    }
  }
};

// E4M3 magnitudes (4 significant bits; subnormals are normal numbers in BF16; 0x7F is NaN),
// and the magnitudes 0-127 of Q8_0's signed 8-bit values.
inline const Bf16ByteTables& e4m3_tables() {
  static const Bf16ByteTables tables([](int code) { return e4m3_to_f32(static_cast<uint8_t>(code)); });
  return tables;
}
inline const Bf16ByteTables& int7_tables() {
  static const Bf16ByteTables tables([](int value) { return static_cast<float>(value); });
  return tables;
}

// 64 BF16 values from the 7-bit indices with the sign bits of `signs`. The unpack
// instructions interleave within 128-bit lanes: the words of `first` are values 0-7, 16-23,
// 32-39, 48-55, those of `second` the rest (a dot product permutes x alike, see matmul.cpp).
inline void bf16_lookup(const Bf16ByteTables& tables, __m512i indices, __m512i signs, __m512i& first,
                        __m512i& second) {
  const __m512i sign_bits = _mm512_set1_epi8(static_cast<char>(0x80));
  const __m512i high = _mm512_ternarylogic_epi32(_mm512_permutex2var_epi8(tables.high[0], indices, tables.high[1]),
                                                 signs, sign_bits, 0xF8);  // high | (signs & sign_bits)
  const __m512i low = _mm512_permutex2var_epi8(tables.low[0], indices, tables.low[1]);
  first = _mm512_unpacklo_epi8(low, high);
  second = _mm512_unpackhi_epi8(low, high);
}

// 32 codes (a 256-bit vector) as 32 BF16 values in their own order: the lookup, then one
// permute that undoes the unpack interleave (the AMX tiles take rows in natural order).
inline __m512i bf16_lookup_32(const Bf16ByteTables& tables, __m256i indices, __m256i signs) {
  __m512i first, second;
  // (The maskz inserts into zeros: GCC 12 warns of undefined vectors in the zero-extending casts.)
  const __m512i zero = _mm512_setzero_si512();
  bf16_lookup(tables, _mm512_maskz_inserti64x4(0xFF, zero, indices, 0), _mm512_maskz_inserti64x4(0xFF, zero, signs, 0),
              first, second);
  // Values 0-7 are first's 128-bit lane 0, 8-15 second's lane 0, 16-23 first's lane 1, 24-31 second's.
  return _mm512_permutex2var_epi64(first, _mm512_set_epi64(11, 10, 3, 2, 9, 8, 1, 0), second);
}

}  // namespace dsv3

#endif
