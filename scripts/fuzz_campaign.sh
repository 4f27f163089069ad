#!/bin/bash
# The standing fuzz campaign, budgeted in CPU time rather than wall time: on a shared or
# loaded machine a wall-clock hour at nice 19 can be three CPU-minutes of fuzzing, which means
# nothing. Each target runs (ASan + UBSan, resuming from build-fuzz/corpus-<target>) until its
# process has used BUDGET CPU-seconds (user + system, read from /proc/PID/stat), then gets SIGINT,
# on which libFuzzer prints its final stats and exits. JOBS targets run at a time, at nice 19 so
# that interactive work keeps priority. Needs `make fuzz` first (the binaries and seed folders).
#
#   bash scripts/fuzz_campaign.sh [BUDGET_SECONDS=3600] [JOBS=2] [target ...]
#
# Per target it writes build-fuzz/campaign-<target>.log (libFuzzer's output) and appends one line
# to build-fuzz/campaign.txt: date, target, CPU seconds, wall seconds, executions, result.
BUDGET=${1:-3600}; JOBS=${2:-2}
[ $# -ge 2 ] && shift 2 || shift $#
TARGETS=${*:-"fuzz_gguf fuzz_model fuzz_safetensors fuzz_http fuzz_json fuzz_tokenizer fuzz_lora"}
TICK=$(getconf CLK_TCK)
# Ctrl-C or kill: each runner stops its fuzzer (which runs in a session of its own, below)
JOBPIDS=""
trap 'kill -TERM $JOBPIDS 2> /dev/null; wait; exit 130' INT TERM

seeds_of() {
  case $1 in
    fuzz_model) echo "$(ls -d fuzz/seeds/$1 2>/dev/null) build-fuzz/corpus-model" ;;
    fuzz_gguf)  echo "build-fuzz/corpus-gguf-seed $(ls -d ../shared/data/llamacpp-vocab 2>/dev/null)" ;;
    fuzz_http)  echo fuzz/http_seeds ;;
    fuzz_lora)  echo build-fuzz/corpus-lora-seed ;;
    *)          ls -d fuzz/seeds/$1 2>/dev/null ;;
  esac
}

cpu_of() {  # utime + stime of PID in whole seconds; fields 14 and 15 after the ")" of comm
  sed 's/.*) //' /proc/$1/stat 2>/dev/null | awk -v t="$TICK" '{ printf "%d", ($12 + $13) / t }'
}

run_one() {
  n=$1; log=build-fuzz/campaign-$n.log
  [ -x build-fuzz/$n ] || { echo "fuzz_campaign: build-fuzz/$n missing (run make fuzz)"; return 1; }
  mkdir -p build-fuzz/corpus-$n
  start=$(date +%s)
  # nice alone is not enough where the kernel schedules by session (autogroup): each session gets
  # an equal share whatever its processes' nice values, so a fuzzer would still take half the
  # machine from interactive work. Each fuzzer runs in a session of its own whose group is then
  # niced (Linux >= 2.6.38; skipped where /proc/PID/autogroup is absent or read-only).
  # shellcheck disable=SC2046
  setsid nice -n 19 build-fuzz/$n -max_total_time=1000000 -max_len=300000 -print_final_stats=1 \
      -artifact_prefix=build-fuzz/crash-$n- build-fuzz/corpus-$n $(seeds_of $n) > $log 2>&1 &
  pid=$!
  trap 'kill -INT $pid 2> /dev/null' TERM
  sleep 1
  echo 19 2> /dev/null > /proc/$pid/autogroup || true
  cpu=0
  while kill -0 $pid 2>/dev/null; do
    cpu=$(cpu_of $pid); [ -n "$cpu" ] || break
    [ "$cpu" -ge "$BUDGET" ] && { kill -INT $pid; break; }
    sleep 10
  done
  wait $pid; rc=$?
  wall=$(( $(date +%s) - start ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' $log | tail -1)
  if grep -q -E 'ERROR: (libFuzzer|AddressSanitizer|UndefinedBehaviorSanitizer)|runtime error|==[0-9]+== ERROR' $log; then
    result="FAILURE (see $log and build-fuzz/crash-$n-*)"
  else
    result=none
  fi
  echo "$(date +%F) $n cpu_s=$cpu wall_s=$wall execs=${execs:-?} rc=$rc found=$result" | tee -a build-fuzz/campaign.txt
}

running=0
for n in $TARGETS; do
  run_one $n &
  JOBPIDS="$JOBPIDS $!"
  running=$((running + 1))
  if [ $running -ge "$JOBS" ]; then wait -n; running=$((running - 1)); fi
done
wait
