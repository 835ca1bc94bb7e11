#!/bin/bash
# Issue 28 fidelity queue: HalfCheetah-v5, 100k steps, the MuJoCo preset (compiled update, 10 evaluation
# episodes every 10k steps), one task at a time on CPU core 1, one thread. Order: a0 b0 c0 a1 b1 c1 a2 b2 c2.
# a = IQ scaled softmax, b = M-IQ scaled softmax, c = M-IQ (unscaled) with M-DQN's clip [-1, 0] of tau ln pi.
cd /work/runs_iq28/code
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONPATH=/work/runs_iq28/code RL_WARNINGS=False
COMMON="env=halfcheetah env.name=HalfCheetah-v5 collector.total_frames=100000 logger.progress_bar=false"
declare -A CFG=(
  [iq_scaled]="loss=iq policy.scaled=true"
  [m_iq_scaled]="loss=m_iq policy.scaled=true"
  [m_iq_clip]="loss=m_iq loss.clip_value_min=-1 loss.clip_value_max=0"
)
for seed in 0 1 2; do
  for name in iq_scaled m_iq_scaled m_iq_clip; do
    dir=/work/runs_iq28/sweeps/${name}_seed${seed}
    [ -e "$dir/done" ] && continue
    cmd="taskset -c 1 /work/main/.venv/bin/python -m torchrl_reg.sweep recipes/iq.py $COMMON ${CFG[$name]} seed=$seed --executor local --dir $dir"
    echo "$(date -u +%FT%TZ) start $name seed $seed: $cmd"
    $cmd
    echo "$(date -u +%FT%TZ) end $name seed $seed rc=$?"
    echo "$cmd" > "$dir/command.txt"; touch "$dir/done"
  done
done
