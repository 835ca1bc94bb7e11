#!/bin/bash
# Issue 28, 300k steps (the second measurement), started after the 100k queue: defaults (unscaled
# softmax(F), unclipped Eq. 2). Cannot finish in this session (IQ ~25-30 min, SAC ~55-60 min per 300k run on
# core 1); checkpoints every 100k steps, so each sweep can be continued with
#   python -m torchrl_reg.sweep --resume /work/runs_iq28/sweeps300/<name> --executor local
while kill -0 $(cat /work/runs_iq28/queue.pid) 2>/dev/null; do sleep 15; done
cd /work/runs_iq28/code
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONPATH=/work/runs_iq28/code RL_WARNINGS=False
COMMON="env=halfcheetah env.name=HalfCheetah-v5 collector.total_frames=300000 logger.progress_bar=false"
for seed in 0 1 2; do
  for name in iq m_iq sac; do
    dir=/work/runs_iq28/sweeps300/${name}_seed${seed}
    [ -e "$dir/done" ] && continue
    if [ $name = sac ]; then recipe=recipes/sac.py; over=""; else recipe=recipes/iq.py; over="loss=$name"; fi
    cmd="taskset -c 1 /work/main/.venv/bin/python -m torchrl_reg.sweep $recipe $COMMON $over seed=$seed --executor local --dir $dir"
    echo "$(date -u +%FT%TZ) start $name seed $seed: $cmd"
    $cmd
    echo "$(date -u +%FT%TZ) end $name seed $seed rc=$?"
    echo "$cmd" > "$dir/command.txt"; touch "$dir/done"
  done
done
