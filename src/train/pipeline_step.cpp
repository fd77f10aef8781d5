#include "train/pipeline_step.h"

#include "base/error.h"

namespace dsv3 {

PipelineStep::PipelineStep(TrainModel<float>& model, PipelineSchedule schedule, Communicator& comm)
    : model_(model),
      schedule_(std::move(schedule)),
      comm_(comm),
      stages_(TrainModel<float>::pipeline_stages(model.config(), schedule_.ranks)) {
  if (schedule_.ranks != comm.size())
    fail("the ", schedule_.name, " schedule is for ", schedule_.ranks, " ranks, the job has ", comm.size());
}

TrainModel<float>::Losses PipelineStep::run(const TrainWeights<float>& w, const std::vector<const int32_t*>& sequences,
                                            int64_t count, double mtp_weight, GradientSum& gradients,
                                            std::vector<int64_t>& expert_counts) {
  const int rank = comm_.rank();
  const int64_t M = schedule_.micro_batches, d = model_.config().hidden_size;
  if (static_cast<int64_t>(sequences.size()) != M)
    fail("the pipeline step got ", sequences.size(), " sequences for ", M, " micro-batches");
  // Per (chunk, micro-batch): the stage's activations, its input and output and their gradients.
  const size_t slots = static_cast<size_t>(schedule_.chunks * M);
  std::vector<TrainModel<float>::Activations> states(slots);
  // The weight-gradient GEMMs between a micro-batch's kBackwardInput and its kBackwardWeight.
  std::vector<TrainModel<float>::DeferredWeightGradients> weight_parts(slots);
  std::vector<std::vector<float>> x_in(slots), x_out(slots), dx_in(slots), dx_out(slots);
  const int64_t bytes = count * d * int64_t(sizeof(float));
  TrainModel<float>::Losses losses;
  for (const PipeOp& op : schedule_.ops[static_cast<size_t>(rank)]) {
    const size_t slot = static_cast<size_t>(op.chunk * M + op.micro_batch);
    const TrainModel<float>::Stage& stage = stages_[static_cast<size_t>(schedule_.stage_of(rank, op.chunk))];
    const int tag = message_tag(op);
    switch (op.kind) {
      case PipeOpKind::kForward:
        x_out[slot].resize(static_cast<size_t>(count * d));
        states[slot] = model_.forward_stage(w, stage, sequences[op.micro_batch], count, x_in[slot].data(),
                                            x_out[slot].data(), losses, &expert_counts);
        break;
      case PipeOpKind::kBackward:
      case PipeOpKind::kBackwardInput: {
        if (!states[slot]) fail("pipeline schedule: backward of micro-batch ", op.micro_batch, " before its forward");
        const bool split = op.kind == PipeOpKind::kBackwardInput;
        dx_in[slot].resize(static_cast<size_t>(count * d));
        model_.backward_stage(w, stage, *states[slot], mtp_weight, dx_out[slot].data(), dx_in[slot].data(),
                              gradients.sequence(), split ? &weight_parts[slot] : nullptr);
        gradients.flush();
        if (!split) states[slot].reset();  // the activations are no longer needed
        break;
      }
      case PipeOpKind::kBackwardWeight:  // the weight-gradient GEMMs its input part left
        if (!states[slot])
          fail("pipeline schedule: weight gradient of micro-batch ", op.micro_batch, " before its input part");
        model_.weight_gradients(weight_parts[slot]);
        gradients.flush();
        states[slot].reset();
        break;
      case PipeOpKind::kSendActivation:
        comm_.send(x_out[slot].data(), bytes, op.peer, tag, "pipeline: sending activations");
        break;
      case PipeOpKind::kRecvActivation:
        x_in[slot].resize(static_cast<size_t>(count * d));
        comm_.receive(x_in[slot].data(), bytes, op.peer, tag, "pipeline: receiving activations");
        break;
      case PipeOpKind::kSendGradient:
        comm_.send(dx_in[slot].data(), bytes, op.peer, tag, "pipeline: sending gradients");
        break;
      case PipeOpKind::kRecvGradient:
        dx_out[slot].resize(static_cast<size_t>(count * d));
        comm_.receive(dx_out[slot].data(), bytes, op.peer, tag, "pipeline: receiving gradients");
        break;
    }
  }
  comm_.wait_sends("pipeline: finishing the step's sends");  // before the buffers go
  return losses;
}

}  // namespace dsv3
