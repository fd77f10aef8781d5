# Sourced by train_cli.sh and train_learning.sh with their arguments (PATH_TO_DSV3 WORK_DIR):
# sets dsv3, work (emptied, then holding tests/train/tiny_corpus.sh's corpus and config), py,
# and the training options both use (common).
set -euo pipefail
dsv3=$1
work=$2
rm -rf "$work" && mkdir -p "$work"
py=/usr/bin/python3

bash "$(dirname "${BASH_SOURCE[0]}")/tiny_corpus.sh" "$work"
common=(--data "$work/data" --config "$work/config.json" --batch 4 --seq-len 48 --lr 1e-2 --warmup 10
        --init-std 0.02 --eval-every 0 -t 2)
