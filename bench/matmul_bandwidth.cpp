// Decode-shaped matmul (one token) over weights larger than the caches: the weight bytes read
// per second, for BF16, FP8 (128x128 blocks) and Q8_0 (GGUF), each also with BF16
// activations (--activations bf16), on the matrix shapes that dominate decoding (DeepSeek-V3's
// expert 2048 x 7168, a square 4096, the 0.5B preset's 512 x 1024 expert); then
// prefill-shaped products of many tokens, in FLOP/s.
//   cmake --build build --target matmul_bandwidth && build/matmul_bandwidth
// (Google Benchmark; bytes_per_second is the weight stream, the number to hold against the
// machine's read bandwidth from `dsv3 bench --roofline`.) DSV3_BENCH_WEIGHT_MB (default 256)
// sets how many megabytes of weights each pass reads: a few (4) keep them in the caches, so
// that the difference from the default is what reading them from memory costs.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <cstring>
#include <deque>
#include <random>
#include <tuple>
#include <vector>

#include "base/thread_pool.h"
#include "kernels/cpu/matmul.h"
#include "tensor/block_quant.h"
#include "tensor/dtype.h"
#include "tensor/matrix.h"

namespace {

using namespace dsv3;

// Enough distinct copies of the matrix that one pass over them reads DSV3_BENCH_WEIGHT_MB
// megabytes (default 256, more than the caches hold).
struct Weights {
  std::vector<std::vector<uint8_t>> codes;
  std::vector<float> scales;
  std::deque<Fp8NanScan> nan_scans;  // FP8: one per copy (found clean on the first pass)
  int64_t rows, cols;
  DType dtype;

  Weights(DType type, int64_t r, int64_t c) : rows(r), cols(c), dtype(type) {
    const int64_t bytes = r * static_cast<int64_t>(dtype_row_bytes(type, c));
    const char* megabytes = std::getenv("DSV3_BENCH_WEIGHT_MB");
    const int64_t pass_bytes = std::max<int64_t>(1, megabytes ? std::atoll(megabytes) : 256) << 20;
    const int64_t copies = std::max<int64_t>(1, pass_bytes / bytes);
    // Normal values of either sign (subnormals would measure the CPU's slow path instead).
    std::mt19937 rng(1);
    codes.assign(static_cast<size_t>(copies), std::vector<uint8_t>(static_cast<size_t>(bytes)));
    for (auto& copy : codes) {
      if (type == DType::Q8_0) {
        std::vector<float> values(static_cast<size_t>(c));
        for (int64_t row = 0; row < r; ++row) {
          for (auto& v : values) v = (static_cast<float>(rng() % 2000) - 1000.0f) / 1000.0f;
          quantize_q8_0(values.data(), c, &copy[static_cast<size_t>(row) * dtype_row_bytes(type, c)]);
        }
      } else if (type == DType::BF16) {
        for (size_t i = 0; i + 1 < copy.size(); i += 2) {
          const uint16_t h = f32_to_bf16((static_cast<float>(rng() % 2000) - 1000.0f) / 1000.0f + 1e-3f);
          std::memcpy(&copy[i], &h, 2);
        }
      } else {
        for (auto& q : copy) q = static_cast<uint8_t>((rng() & 0x80) | (0x08 + rng() % 0x70));  // E4M3, exponent > 0
      }
    }
    scales.assign(static_cast<size_t>(((r + 127) / 128) * ((c + 127) / 128)), 0.01f);
    if (type == DType::F8_E4M3)
      for (const auto& copy : codes) nan_scans.emplace_back(copy.data(), copy.size());
  }
  Matrix matrix(size_t i) const {
    if (dtype != DType::F8_E4M3) return Matrix{dtype, rows, cols, codes[i].data(), nullptr, 0};
    return Matrix{dtype, rows, cols, codes[i].data(), scales.data(), 0, &nan_scans[i]};
  }
};

void one_token(benchmark::State& state, DType dtype, MatmulInput input) {
  const Weights w(dtype, state.range(0), state.range(1));
  ThreadPool pool(static_cast<size_t>(state.range(2)));
  std::vector<float> x(static_cast<size_t>(w.cols), 0.5f), y(static_cast<size_t>(w.rows));
  for (auto _ : state)
    for (size_t i = 0; i < w.codes.size(); ++i) {
      matmul(w.matrix(i), x.data(), 1, y.data(), pool, input);
      benchmark::DoNotOptimize(y.data());
    }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(w.codes.size() * w.codes[0].size()));
}

void shapes(benchmark::internal::Benchmark* b) {
  for (int64_t threads : {1, 2})
    for (auto [rows, cols] : {std::pair<int64_t, int64_t>{2048, 7168}, {4096, 4096}, {512, 1024}})
      b->Args({rows, cols, threads});
  b->ArgNames({"rows", "cols", "threads"})->UseRealTime()->Unit(benchmark::kMillisecond);
}

BENCHMARK_CAPTURE(one_token, bf16, DType::BF16, MatmulInput::kF32)->Apply(shapes);
BENCHMARK_CAPTURE(one_token, fp8, DType::F8_E4M3, MatmulInput::kF32)->Apply(shapes);
BENCHMARK_CAPTURE(one_token, q8_0, DType::Q8_0, MatmulInput::kF32)->Apply(shapes);
// The opt-in BF16 activations (AVX512-BF16 dot products where the CPU has them).
BENCHMARK_CAPTURE(one_token, bf16_bf16x, DType::BF16, MatmulInput::kBF16)->Apply(shapes);
BENCHMARK_CAPTURE(one_token, fp8_bf16x, DType::F8_E4M3, MatmulInput::kBF16)->Apply(shapes);
BENCHMARK_CAPTURE(one_token, q8_0_bf16x, DType::Q8_0, MatmulInput::kBF16)->Apply(shapes);
// The opt-in Q8_0 activations (AVX512-VNNI integer dot products where the CPU has them).
BENCHMARK_CAPTURE(one_token, q8_0_q8x, DType::Q8_0, MatmulInput::kQ8)->Apply(shapes);

// Prefill-shaped products (many tokens; compute-bound): FLOP/s. The 0.5B preset's expert with
// the ~16 tokens a 128-token prompt sends to each of its experts, its dense layer with all
// 128, and DeepSeek-V3's expert with 64; on one thread and two (what one core does alone,
// and whether two share a limit).
void many_tokens(benchmark::State& state, DType dtype, MatmulInput input) {
  const Weights w(dtype, state.range(0), state.range(1));
  const int64_t T = state.range(2);
  ThreadPool pool(static_cast<size_t>(state.range(3)));
  std::vector<float> x(static_cast<size_t>(T * w.cols), 0.5f), y(static_cast<size_t>(T * w.rows));
  for (auto _ : state)
    for (size_t i = 0; i < w.codes.size(); ++i) {
      matmul(w.matrix(i), x.data(), T, y.data(), pool, input);
      benchmark::DoNotOptimize(y.data());
    }
  state.counters["FLOP/s"] = benchmark::Counter(
      static_cast<double>(state.iterations() * w.codes.size()) * 2.0 * static_cast<double>(w.rows * w.cols * T),
      benchmark::Counter::kIsRate);
}

void prefill_shapes(benchmark::internal::Benchmark* b) {
  for (auto [rows, cols, tokens] : {std::tuple<int64_t, int64_t, int64_t>{512, 1024, 16}, {2816, 1024, 128},
                                    {2048, 7168, 64}})
    for (int64_t threads : {1, 2}) b->Args({rows, cols, tokens, threads});
  b->ArgNames({"rows", "cols", "tokens", "threads"})->UseRealTime()->Unit(benchmark::kMillisecond);
}

BENCHMARK_CAPTURE(many_tokens, bf16, DType::BF16, MatmulInput::kF32)->Apply(prefill_shapes);
BENCHMARK_CAPTURE(many_tokens, fp8, DType::F8_E4M3, MatmulInput::kF32)->Apply(prefill_shapes);
BENCHMARK_CAPTURE(many_tokens, q8_0, DType::Q8_0, MatmulInput::kF32)->Apply(prefill_shapes);
// With BF16 activations: AMX tiles where the CPU has them.
BENCHMARK_CAPTURE(many_tokens, bf16_bf16x, DType::BF16, MatmulInput::kBF16)->Apply(prefill_shapes);
BENCHMARK_CAPTURE(many_tokens, fp8_bf16x, DType::F8_E4M3, MatmulInput::kBF16)->Apply(prefill_shapes);
BENCHMARK_CAPTURE(many_tokens, q8_0_bf16x, DType::Q8_0, MatmulInput::kBF16)->Apply(prefill_shapes);

}  // namespace

BENCHMARK_MAIN();
