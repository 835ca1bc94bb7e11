#!/bin/bash
# The IQ fidelity queues on HalfCheetah-v5, the MuJoCo preset (compiled update, 10 evaluation episodes every
# 10k steps), one task at a time on one CPU core (CORE, default 1), one thread, each run a single-task sweep of
# the product's CLI, from a `git archive` of main at the commit in each result JSON's `code_commit`:
#   queue.sh 100k   the ablations at 100k steps, order a0 b0 c0 a1 b1 c1 a2 b2 c2:
#                   a = IQ scaled softmax, b = M-IQ scaled softmax, c = M-IQ (unscaled) with M-DQN's clip [-1, 0]
#   queue.sh 300k   the defaults (unscaled softmax(F), unclipped Eq. 2) at 300k steps: IQ, M-IQ, SAC per seed.
#                   SAC seeds 1 and 2 ran later as `CORE=0 SEEDS=1 NAMES=sac queue.sh 300k` and
#                   `CORE=1 SEEDS=2 NAMES=sac queue.sh 300k` side by side (runs at /work/runs/sweeps300).
phase=${1:?usage: queue.sh 100k|300k}
CORE=${CORE:-1}
ROOT=${ROOT:-/work/runs_iq28}
cd "$ROOT/code"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONPATH="$ROOT/code" RL_WARNINGS=False
declare -A CFG
case $phase in
  100k) SWEEPS=$ROOT/sweeps; NAMES=${NAMES:-"iq_scaled m_iq_scaled m_iq_clip"}
        CFG=([iq_scaled]="loss=iq policy.scaled=true" [m_iq_scaled]="loss=m_iq policy.scaled=true"
             [m_iq_clip]="loss=m_iq loss.clip_value_min=-1 loss.clip_value_max=0") ;;
  300k) SWEEPS=$ROOT/sweeps300; NAMES=${NAMES:-"iq m_iq sac"}
        CFG=([iq]="loss=iq" [m_iq]="loss=m_iq" [sac]="") ;;
  *) echo "queue.sh: phase must be 100k or 300k, got '$phase'" >&2; exit 2 ;;
esac
COMMON="env=halfcheetah env.name=HalfCheetah-v5 collector.total_frames=${phase%k}000 logger.progress_bar=false"
for seed in ${SEEDS:-0 1 2}; do
  for name in $NAMES; do
    dir=$SWEEPS/${name}_seed${seed}
    [ -e "$dir/done" ] && continue
    recipe=recipes/iq.py; [ "$name" = sac ] && recipe=recipes/sac.py
    cmd="taskset -c $CORE /work/main/.venv/bin/python -m torchrl_reg.sweep $recipe $COMMON ${CFG[$name]} seed=$seed --executor local --dir $dir"
    echo "$(date -u +%FT%TZ) start $name seed $seed: $cmd"
    $cmd
    echo "$(date -u +%FT%TZ) end $name seed $seed rc=$?"
    echo "$cmd" > "$dir/command.txt"; touch "$dir/done"
  done
done
