// dsv3 plot RUN: PNG plots of a training run's metrics.jsonl, drawn by Debian's gnuplot:
// loss.png (main, MTP and validation loss), maxvio.png (MaxVio per step), and
// expert_load_L.png per MoE layer (a heatmap of each expert's share of the tokens per step).
// Written by gnuplot rather than by hand: plotting is not the heart of the project.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "cli/commands.h"

namespace dsv3::cli {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string quoted(const fs::path& p) { return "'" + p.string() + "'"; }

}  // namespace

void plot_run(const std::string& run_dir) {
  const fs::path run(run_dir), metrics = run / "metrics.jsonl";
  std::ifstream in(metrics);
  if (!in) fail("no metrics.jsonl in the run directory (", metrics.string(), ")");
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0)
    fail("gnuplot is not installed (Debian package gnuplot-nox; scripts/setup.sh installs it)");

  // Plain data files for gnuplot: one row per step.
  const fs::path data = run / "plots";
  fs::create_directories(data);
  std::ofstream curves(data / "curves.dat");
  std::vector<std::ofstream> loads;
  std::string line;
  int64_t steps = 0;
  while (std::getline(in, line)) {
    const json e = json::parse(line, nullptr, false);
    if (!e.is_object() || !e.contains("step")) continue;
    ++steps;
    curves << e["step"] << ' ' << e.value("loss", 0.0) << ' ' << e.value("mtp_loss", 0.0) << ' '
           << (e.contains("val_loss") ? e["val_loss"].dump() : "NaN") << ' ' << e.value("maxvio", 0.0) << '\n';
    if (!e.contains("expert_load")) continue;
    const json& layers = e["expert_load"];
    if (loads.size() < layers.size()) loads.resize(layers.size());
    for (size_t l = 0; l < layers.size(); ++l) {
      if (!loads[l].is_open()) loads[l].open(data / ("expert_load_" + std::to_string(l) + ".dat"));
      double total = 0;
      for (const auto& c : layers[l]) total += c.get<double>();
      for (size_t x = 0; x < layers[l].size(); ++x)
        loads[l] << e["step"] << ' ' << x << ' ' << (total > 0 ? layers[l][x].get<double>() / total : 0.0) << '\n';
      loads[l] << '\n';
    }
  }
  curves.close();
  for (auto& f : loads) f.close();
  if (steps == 0) fail("metrics.jsonl has no steps (", metrics.string(), ")");

  std::string script = "set terminal pngcairo size 900,500\nset grid\nset xlabel 'step'\n";
  script += "set output " + quoted(data / "loss.png") + "\nset ylabel 'cross-entropy'\n";
  script += "plot " + quoted(data / "curves.dat") + " using 1:2 with lines title 'loss', '' using 1:3 with lines title "
            "'MTP loss', '' using 1:4 with linespoints title 'validation loss'\n";
  script += "set output " + quoted(data / "maxvio.png") + "\nset ylabel 'MaxVio'\n";
  script += "plot " + quoted(data / "curves.dat") + " using 1:5 with lines title 'MaxVio (mean over MoE layers)'\n";
  for (size_t l = 0; l < loads.size(); ++l) {
    script += "set output " + quoted(data / ("expert_load_" + std::to_string(l) + ".png")) + "\n";
    script += "set ylabel 'expert'\nset cblabel 'share of routed tokens'\nset view map\n";
    script += "set title 'MoE layer " + std::to_string(l) + (l + 1 == loads.size() ? " (MTP block)" : "") + "'\n";
    script += "splot " + quoted(data / ("expert_load_" + std::to_string(l) + ".dat")) +
              " using 1:2:3 with image notitle\nunset title\nunset view\n";
  }
  std::ofstream(data / "plots.gp") << script;
  if (std::system(("gnuplot " + quoted(data / "plots.gp") + " 2>" + quoted(data / "gnuplot.log")).c_str()) != 0)
    fail("gnuplot failed (", (data / "gnuplot.log").string(), ")");
  std::fprintf(stderr, "dsv3 plot: %lld steps -> %s/{loss,maxvio}.png and %zu expert-load heatmaps\n",
               static_cast<long long>(steps), data.c_str(), loads.size());
}

void add_plot_command(CLI::App& app) {
  auto dir = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand("plot", "Plot a training run's loss, MaxVio and expert loads (PNG, gnuplot)");
  cmd->add_option("run", *dir, "The run directory (with metrics.jsonl)")->required();
  cmd->callback([dir] { plot_run(*dir); });
}

}  // namespace dsv3::cli
