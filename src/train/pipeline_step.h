// One training step of pipeline parallelism: runs this rank's list of a PipelineSchedule
// (dist/pipeline_schedule.h) over its model stages, with the activations and their gradients
// travelling between ranks as non-blocking sends and waited receives.
//
// A micro-batch is one sequence. Each rank holds a full replica of the parameters (as in data
// parallelism) but computes only the stages the schedule gives it, so its gradient buffer is
// non-zero only there; the trainer then sums the gradients over the ranks, which also adds up
// the two copies of each stage under DualPipe and the embedding the MTP module shares with the
// first stage. kBackwardInput leaves the linear layers' weight-gradient GEMMs to the
// micro-batch's kBackwardWeight (TrainModel's split backward), which then frees its activations.
#pragma once

#include <cstdint>
#include <vector>

#include "dist/communicator.h"
#include "dist/pipeline_schedule.h"
#include "train/gradient_sum.h"
#include "train/train_model.h"

namespace dsv3 {

class PipelineStep {
 public:
  PipelineStep(TrainModel<float>& model, PipelineSchedule schedule, Communicator& comm);

  // Runs the step on micro-batches `sequences` (schedule.micro_batches of them, `count` tokens
  // each); adds this rank's share of the losses (summed over micro-batches), its gradients into
  // `gradients` (flushed after each backward) and its expert loads into `expert_counts`.
  TrainModel<float>::Losses run(const TrainWeights<float>& w, const std::vector<const int32_t*>& sequences,
                                int64_t count, double mtp_weight, GradientSum& gradients,
                                std::vector<int64_t>& expert_counts);

 private:
  TrainModel<float>& model_;
  PipelineSchedule schedule_;
  Communicator& comm_;
  std::vector<TrainModel<float>::Stage> stages_;
};

}  // namespace dsv3
