// dsv3 train: trains a DeepSeek-V3-architecture model (train/trainer.h).
#include "cli/commands.h"
#include "train/trainer.h"

namespace dsv3::cli {

void add_train_command(CLI::App& app) {
  auto o = std::make_shared<TrainOptions>();
  CLI::App* cmd = app.add_subcommand("train", "Train a DeepSeek-V3-architecture model on text files");
  cmd->add_option("--data", o->data, "Text files or directories (read recursively)")->required();
  cmd->add_option("--out", o->out, "Run directory: checkpoints RUN/step-N and RUN/latest, metrics.jsonl")->required();
  cmd->add_option("--config", o->config, "The model's config.json (default: the 'small' preset)");
  cmd->add_option("--tokenizer", o->tokenizer, "Tokenizer directory (default: RUN/tokenizer, trained if missing)");
  cmd->add_option("--steps", o->steps, "Optimizer steps")->capture_default_str();
  cmd->add_option("--batch", o->batch, "Sequences per step")->capture_default_str();
  cmd->add_option("--seq-len", o->seq_len, "Tokens per sequence")->capture_default_str();
  cmd->add_option("--seed", o->seed, "Seed of initialisation and data order")->capture_default_str();
  cmd->add_option("--lr", o->lr, "Peak learning rate")->capture_default_str();
  cmd->add_option("--final-lr", o->final_lr, "Learning rate at the end of the cosine decay")->capture_default_str();
  cmd->add_option("--warmup", o->warmup, "Linear warm-up steps")->capture_default_str();
  cmd->add_option("--init-std", o->init_std, "Standard deviation of the initial weights")->capture_default_str();
  cmd->add_option("--clip", o->clip, "Global gradient-norm clip")->capture_default_str();
  cmd->add_option("--mtp-weight", o->mtp_weight, "Weight lambda of the MTP loss (0 disables it)")->capture_default_str();
  cmd->add_option("--fim-rate", o->fim_rate, "Fill-in-the-middle (PSM) rate per document; 0.1 suits code")
      ->capture_default_str();
  cmd->add_option("--balance", o->balance,
                  "Load balancing: aux-free (bias + sequence-wise loss), aux-loss (classic baseline) or none")
      ->capture_default_str();
  cmd->add_option("--seq-alpha", o->seq_alpha, "Weight of the sequence-wise balance loss with aux-free")
      ->capture_default_str();
  cmd->add_option("--aux-alpha", o->aux_alpha, "Weight of the balance loss with aux-loss")->capture_default_str();
  cmd->add_option("--gamma", o->gamma, "Bias update speed of aux-free balancing")->capture_default_str();
  cmd->add_flag("--bf16-moments", o->bf16_moments, "Keep the AdamW moments in BF16");
  cmd->add_option("--precision", o->precision,
                  "GEMM inputs of the projections: fp32, bf16 (baseline) or fp8 (the report's recipe: E4M3 tiles "
                  "and blocks, FP32 promotion every 128 products); bf16 and fp8 keep BF16 moments")
      ->capture_default_str();
  cmd->add_option("--eval-every", o->eval_every, "Validation loss every N steps (0: never)")->capture_default_str();
  cmd->add_option("--save-every", o->save_every, "Checkpoint every N steps (and at the end)")->capture_default_str();
  cmd->add_option("--keep", o->keep, "Checkpoints to keep (the newest)")->capture_default_str();
  cmd->add_flag("--resume", o->resume, "Continue from RUN/latest");
  cmd->add_option("--time-limit", o->time_limit, "Stop (and save) after this many seconds")->capture_default_str();
  cmd->add_option("--ep", o->ep,
                  "Expert parallelism under mpirun: 1, or the number of ranks to shard the routed experts over")
      ->capture_default_str();
  cmd->add_option("--pp", o->pp, "Pipeline parallelism under mpirun: 1, or the number of ranks to cut the layers over")
      ->capture_default_str();
  cmd->add_option("--schedule", o->schedule, "Pipeline schedule with --pp: 1f1b or dualpipe (micro-batches = --batch)")
      ->capture_default_str();
  cmd->add_option("--grad-reduce", o->grad_reduce,
                  "Data parallelism: overlap (sum each layer's gradient over the ranks during the last backward) "
                  "or after (the whole gradient after it)")
      ->capture_default_str();
  cmd->add_option("--dist-timeout", o->dist_timeout,
                  "Under mpirun: seconds a rank waits for the others before it ends the job")
      ->capture_default_str();
  cmd->add_option("-t,--threads", o->threads, "Worker threads (default: all hardware threads)")
      ->check(CLI::Range(0, 1024));
  cmd->callback([o] { train(*o); });
}

}  // namespace dsv3::cli
