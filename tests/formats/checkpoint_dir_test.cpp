#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "base/error.h"
#include "base/thread_pool.h"
#include "formats/checkpoint.h"
#include "formats/hf_writer.h"
#include "formats/model_dir.h"
#include "model/presets.h"

namespace dsv3 {
namespace {

namespace fs = std::filesystem;

std::string fresh_dir(const std::string& name) {
  const fs::path dir = fs::path(testing::TempDir()) / ("ckpt_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

template <typename F>
void expect_error(F&& f, const std::vector<std::string>& fragments) {
  try {
    f();
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    for (const auto& fragment : fragments)
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what() << " lacks " << fragment;
  }
}

const std::vector<float> kValues = {1, 2, 3, 4};

TEST(CheckpointDirTest, ShardedIndexIsResolvedAcrossFiles) {
  const std::string dir = fresh_dir("sharded");
  write_safetensors(dir + "/a.safetensors", {{"x", DType::F32, {2}, kValues.data()}});
  write_safetensors(dir + "/b.safetensors", {{"y", DType::F32, {4}, kValues.data()}});
  std::ofstream(dir + "/model.safetensors.index.json")
      << R"({"metadata": {}, "weight_map": {"x": "a.safetensors", "y": "b.safetensors"}})";
  Checkpoint c(dir);
  EXPECT_EQ(c.get("y").shape, (std::vector<int64_t>{4}));
  EXPECT_NE(c.get("x").file->find("a.safetensors"), std::string::npos);
  expect_error([&] { c.get("z"); }, {"missing tensor", "z", dir});
}

TEST(CheckpointDirTest, BadIndexFilesAreRejected) {
  auto with_index = [](const std::string& name, const std::string& index) {
    const std::string dir = fresh_dir(name);
    write_safetensors(dir + "/a.safetensors", {{"x", DType::F32, {2}, kValues.data()}});
    std::ofstream(dir + "/model.safetensors.index.json") << index;
    return dir;
  };
  const std::string index = "model.safetensors.index.json";
  expect_error([&] { Checkpoint c(with_index("bad_json", R"({"weight_map": )")); }, {"malformed JSON", index});
  expect_error([&] { Checkpoint c(with_index("no_map", R"({"metadata": {}})")); }, {"weight_map", index});
  expect_error([&] { Checkpoint c(with_index("map_array", R"({"weight_map": []})")); }, {"weight_map", index});
  expect_error([&] { Checkpoint c(with_index("value_int", R"({"weight_map": {"x": 3}})")); }, {"x", index});
  expect_error([&] { Checkpoint c(with_index("traversal", R"({"weight_map": {"x": "../a.safetensors"}})")); },
               {"invalid shard", "x"});
  expect_error([&] { Checkpoint c(with_index("dotdot", R"({"weight_map": {"x": ".."}})")); }, {"invalid shard"});
  expect_error([&] { Checkpoint c(with_index("absent_tensor", R"({"weight_map": {"q": "a.safetensors"}})")); },
               {"does not hold", "q"});
  expect_error([&] { Checkpoint c(with_index("absent_shard", R"({"weight_map": {"x": "zz.safetensors"}})")); },
               {"cannot open", "zz.safetensors"});
  expect_error([&] { Checkpoint c(fresh_dir("empty")); }, {"no model.safetensors"});
  expect_error([&] { Checkpoint c(testing::TempDir() + "/no/such/dir"); }, {"not found"});
}

// A tiny model on disk, then a copy with one tensor changed by `edit`.
std::string broken_model(const std::string& name, DType dtype,
                         const std::function<void(std::vector<TensorToWrite>&, std::vector<std::vector<uint8_t>>&)>& edit) {
  const std::string dir = fresh_dir(name);
  write_checkpoint(dir, preset_config("tiny"), dtype, [](const WeightSlot& slot, float* v) {
    std::fill(v, v + slot.rows * std::max<int64_t>(slot.cols, 1), 0.01f);
  });
  std::vector<TensorToWrite> tensors;
  std::vector<std::vector<uint8_t>> storage;
  {
    SafetensorsFile file(dir + "/model.safetensors");
    for (const auto& [n, t] : file.tensors()) {
      storage.emplace_back(t.data, t.data + t.nbytes);
      tensors.push_back({n, t.dtype, t.shape, storage.back().data()});
    }
  }
  edit(tensors, storage);
  write_safetensors(dir + "/model.safetensors", tensors);
  return dir;
}

TensorToWrite& find(std::vector<TensorToWrite>& tensors, const std::string& name) {
  for (auto& t : tensors)
    if (t.name == name) return t;
  throw std::runtime_error("test setup: no tensor " + name);
}

TEST(ModelBindingTest, ShapeDtypeAndScaleProblemsNameTheTensor) {
  ThreadPool pool(1);
  const std::string wo = "model.layers.0.self_attn.o_proj.weight";
  const std::string wrong_shape = broken_model("wrong_shape", DType::BF16, [&](auto& t, auto&) {
    find(t, wo).shape = {16, 256};  // same bytes, other shape
  });
  expect_error([&] { load_model(wrong_shape, pool); }, {wo, "[16, 256]", "[64, 64]", "model.safetensors"});

  const std::string missing = broken_model("missing", DType::BF16, [&](auto& t, auto&) {
    t.erase(std::remove_if(t.begin(), t.end(), [&](auto& x) { return x.name == wo; }), t.end());
  });
  expect_error([&] { load_model(missing, pool); }, {"missing tensor", wo});

  const std::string no_scale = broken_model("no_scale", DType::F8_E4M3, [&](auto& t, auto&) {
    t.erase(std::remove_if(t.begin(), t.end(), [&](auto& x) { return x.name == wo + "_scale_inv"; }), t.end());
  });
  expect_error([&] { load_model(no_scale, pool); }, {"_scale_inv", wo});

  const std::string bad_scale_shape = broken_model("bad_scale_shape", DType::F8_E4M3, [&](auto& t, auto& storage) {
    storage.emplace_back(8, 0);
    find(t, wo + "_scale_inv") = {wo + "_scale_inv", DType::F32, {1, 2}, storage.back().data()};
  });
  expect_error([&] { load_model(bad_scale_shape, pool); }, {wo + "_scale_inv", "[1, 2]"});

  const std::string bf16_scale = broken_model("bf16_scale", DType::F8_E4M3, [&](auto& t, auto& storage) {
    storage.emplace_back(2, 0);
    find(t, wo + "_scale_inv") = {wo + "_scale_inv", DType::BF16, {1, 1}, storage.back().data()};
  });
  expect_error([&] { load_model(bf16_scale, pool); }, {wo + "_scale_inv", "F32"});

  const std::string fp8_norm = broken_model("fp8_norm", DType::BF16, [&](auto& t, auto& storage) {
    storage.emplace_back(64, 0);
    find(t, "model.norm.weight") = {"model.norm.weight", DType::F8_E4M3, {64}, storage.back().data()};
  });
  expect_error([&] { load_model(fp8_norm, pool); }, {"model.norm.weight", "FP8"});

  const std::string no_config = fresh_dir("no_config");
  expect_error([&] { load_model(no_config, pool); }, {"config.json"});
}

}  // namespace
}  // namespace dsv3
