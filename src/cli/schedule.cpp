// dsv3 schedule: the pipeline-parallel schedules (1F1B, DualPipe) for PP ranks and M micro-batches,
// simulated with given op times: per rank the ops, busy time, bubble beside training.md's formula,
// and peak activation memory; --ops prints each rank's op sequence.
#include <algorithm>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "base/error.h"
#include "cli/commands.h"
#include "dist/pipeline_schedule.h"

namespace dsv3::cli {

namespace {

struct ScheduleOptions {
  int ranks = 0;
  int micro_batches = 0;
  std::string schedule = "all";
  bool ops = false;
  std::string times = "1,1,1";
};

// "F,I,W[,FB]": forward, input-gradient backward, weight-gradient backward, overlapped F&B pair.
OpTimes parse_times(const std::string& text) {
  std::vector<double> values;
  std::istringstream in(text);
  for (std::string field; std::getline(in, field, ',');) {
    size_t used = 0;
    double value = -1;
    try {
      value = std::stod(field, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != field.size() || value < 0) fail("--times: '", field, "' is not a time >= 0 (", text, ")");
    values.push_back(value);
  }
  if (values.size() != 3 && values.size() != 4) fail("--times takes F,I,W or F,I,W,FB (got '", text, "')");
  OpTimes times;
  times.forward = values[0];
  times.backward_input = values[1];
  times.backward_weight = values[2];
  if (values.size() == 4) times.forward_backward = values[3];
  return times;
}

void print_schedule(const PipelineSchedule& schedule, const OpTimes& times, bool print_ops) {
  const SimulationResult sim = simulate(schedule, times);
  const bool dualpipe = schedule.name == "dualpipe";
  std::printf("\n%s: PP=%d, %d micro-batches; makespan %g, max bubble %g, formula %s = %g\n", schedule.name.c_str(),
              schedule.ranks, schedule.micro_batches, sim.makespan,
              *std::max_element(sim.bubble.begin(), sim.bubble.end()),
              dualpipe ? "(PP/2-1)(F&B+B-3W)" : "(PP-1)(F+B)", formula_bubble(schedule, times));
  std::printf("  %4s %5s %9s %9s %9s %11s\n", "rank", "ops", "busy", "bubble", "formula", "activations");
  for (int r = 0; r < schedule.ranks; ++r) {
    const size_t i = size_t(r);
    std::printf("  %4d %5zu %9g %9g %9g %11d\n", r, schedule.ops[i].size(), sim.busy[i], sim.bubble[i],
                formula_bubble(schedule, times), sim.peak_activations[i]);
  }
  if (print_ops)
    for (int r = 0; r < schedule.ranks; ++r)
      std::printf("  rank %d: %s\n", r, format_ops(schedule.ops[size_t(r)]).c_str());
}

void run(const ScheduleOptions& o) {
  const OpTimes times = parse_times(o.times);
  // Build every schedule first, so invalid arguments fail before anything is printed.
  std::vector<PipelineSchedule> schedules;
  for (const char* name : {"1f1b", "dualpipe"})
    if (o.schedule == "all" || o.schedule == name) schedules.push_back(schedule_from_name(name, o.ranks, o.micro_batches));
  std::printf("times: F=%g I=%g W=%g (B=I+W=%g) F&B=%g%s\n", times.forward, times.backward_input,
              times.backward_weight, times.backward(), times.overlapped_pair(),
              times.forward_backward < 0 ? " (F+B: not overlapped)" : "");
  std::printf("bubble: makespan - the rank's busy time; activations: peak micro-batches held, one stage's each\n");
  for (const PipelineSchedule& schedule : schedules) print_schedule(schedule, times, o.ops);
}

}  // namespace

void add_schedule_command(CLI::App& app) {
  auto o = std::make_shared<ScheduleOptions>();
  CLI::App* cmd = app.add_subcommand("schedule", "Simulate the pipeline-parallel schedules: bubbles and activation memory");
  cmd->add_option("--pp", o->ranks, "Pipeline-parallel ranks")->required();
  cmd->add_option("--micro-batches", o->micro_batches, "Micro-batches per step")->required();
  cmd->add_option("--schedule", o->schedule, "1f1b, dualpipe or all")
      ->check(CLI::IsMember({"1f1b", "dualpipe", "all"}))
      ->capture_default_str();
  cmd->add_flag("--ops", o->ops, "Print each rank's op sequence (F/B/I/W<chunk>.<micro-batch>, a/g messages)");
  cmd->add_option("--times", o->times,
                  "Op times F,I,W[,FB]: forward, input-gradient and weight-gradient backward, overlapped F&B pair "
                  "(default F+I+W)")
      ->capture_default_str();
  cmd->callback([o] { run(*o); });
}

}  // namespace dsv3::cli
