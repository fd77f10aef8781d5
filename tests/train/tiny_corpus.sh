#!/usr/bin/env bash
# The tiny training setup shared by end-to-end tests: DIR/data/text.txt (16 fixed sentences
# of a 13-word vocabulary in random order: within a sentence the next word is certain, so a
# model that learns anything beats the unigram entropy by far) and DIR/config.json (a tiny
# DeepSeek-V3 with MoE, a dense layer, q-LoRA and an MTP module).   usage: tiny_corpus.sh DIR
set -euo pipefail
mkdir -p "$1/data"
/usr/bin/python3 - "$1/data/text.txt" <<'PY'
import random, sys
rng = random.Random(0)
words = "the lord said unto moses and aaron speak unto the children of israel".split()
sentences = [" ".join(rng.choice(words) for _ in range(rng.randint(6, 12))) + "." for _ in range(16)]
lines = [rng.choice(sentences) for _ in range(3000)]
open(sys.argv[1], "w").write("\n".join(lines) + "\n")
PY
cat >"$1/config.json" <<'JSON'
{"vocab_size": 320, "hidden_size": 48, "num_hidden_layers": 2, "num_nextn_predict_layers": 1,
 "num_attention_heads": 2, "q_lora_rank": 24, "kv_lora_rank": 16, "qk_nope_head_dim": 12, "qk_rope_head_dim": 8,
 "v_head_dim": 12, "intermediate_size": 96, "moe_intermediate_size": 24, "n_routed_experts": 8,
 "num_experts_per_tok": 2, "n_shared_experts": 1, "n_group": 4, "topk_group": 2, "routed_scaling_factor": 2.5,
 "scoring_func": "sigmoid", "topk_method": "noaux_tc", "norm_topk_prob": true, "first_k_dense_replace": 1,
 "rms_norm_eps": 1e-6, "rope_theta": 10000, "max_position_embeddings": 4096, "bos_token_id": 0, "eos_token_id": 1}
JSON
