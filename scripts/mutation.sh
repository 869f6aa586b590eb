#!/usr/bin/env bash
# Mutation testing (cosmic-ray) of the modules users' numbers come from, one module at a time.
#
#   bash scripts/mutation.sh                 # every module below, smallest first
#   bash scripts/mutation.sh smoothing ticks # some of them
#   bash scripts/mutation.sh --list          # the modules, their files and their tests
#
# cosmic-ray mutates files in place, so it runs in a scratch copy of this checkout with its own
# editable install (MUTATION_DIR, default /tmp/neuraterm-mutation): a killed run never leaves a mutant
# in your tree, and you can keep working while it runs. Each module runs only the tests that cover it
# (pytest -x: a mutant dies at its first failing test). Results: $MUTATION_DIR/results/<module>.txt
# (every surviving mutant's diff) and a score line per module on stdout; docs/mutation.md records them.
# Each mutant runs only the tests that execute the statements it changed (per-test coverage recorded
# once per module on the unmutated copy: scripts/mutation_coverage.py). MUTATION_JOBS lanes (default 2
# where there are 2 cores or more) run modules side by side, each in its own copy ($MUTATION_DIR/laneN),
# the largest modules first, each to the lane with the least work so far. Runs under `nice -n 19`.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="${MUTATION_DIR:-/tmp/neuraterm-mutation}"
# MUTATION_TIMEOUT: seconds per mutant's test run (a mutant that hangs counts as killed); default below.
# MUTATION_FILES="core/nn/linear.py core/nn/losses.py" bash scripts/mutation.sh engine: part of a module.
# MUTATION_SELECT=0: every mutant runs the module's whole selection (to compare verdicts with selection).
# MUTATION_SAMPLE=N: N mutants of each module drawn at random (MUTATION_SEED, default 0), the rest skipped.
# MUTATION_SHARDS="checkpoint:2 engine:2": those modules run as that many sessions (every Nth mutant each,
# `checkpoint.1of2`...), which the lanes share like modules; the default splits the three largest over
# the lanes, so that no lane waits for one module at the end. Their score is printed added up.

# smallest first; module | files it mutates | test files | pytest -k expression (over all of them; empty: every test)
MODULES=(
  "smoothing|tui/smoothing.py|tests/test_charts.py|smooth"
  "metrics|core/metrics.py|tests/test_engine.py|metrics"
  "event_log|core/run/event_log.py|tests/test_event_log_bounds.py tests/test_event_log_reader.py|"
  "normalize|core/data/normalize.py|tests/test_normalize_statistics.py tests/test_custom_data.py|statistics or standardize or pixel_deviation or noise"
  "schedules|core/optim/schedules.py|tests/test_schedules.py tests/test_torch_parity.py|schedule or plateau"
  "ticks|tui/ticks.py|tests/test_tick_placement.py tests/test_charts.py|not smooth"
  "results|core/study/results.py|tests/test_study_tables.py tests/test_studies.py|study_tables or sample_standard or last_epoch_its_report"
  "optimizers|core/optim/optimizers.py|tests/test_optimizer_rules.py tests/test_engine.py tests/test_torch_parity.py|optimizer or l2 or clipping"
  "data_readers|core/data/idx.py core/data/npy.py core/data/csv_table.py core/data/custom.py|tests/test_csv_reader.py tests/test_custom_validation.py tests/test_data_readers.py tests/test_custom_data.py tests/test_data.py|"
  "engine|core/nn/tensor.py core/nn/activations.py core/nn/batchnorm.py core/nn/linear.py core/nn/losses.py|tests/test_tensor_ops.py tests/test_gradcheck.py tests/test_torch_parity.py tests/test_engine.py|"
  "checkpoint|core/run/checkpoint.py|tests/test_checkpoint_writer.py tests/test_checkpoint_integrity.py tests/test_bad_input.py tests/test_fork.py|writer or integrity or damaged or format_1 or foreign or keep or kept"
)

if [ "${1:-}" = "--list" ]; then
  printf '%s\n' "${MODULES[@]}" | column -t -s '|'
  exit 0
fi

mkdir -p "$WORK/results"
# One run at a time per scratch folder (the copies are replaced at start): another run needs its own MUTATION_DIR.
exec 9>"$WORK/lock"
flock -n 9 || { echo "another mutation run is using $WORK: give this one its own MUTATION_DIR" >&2; exit 1; }
PY="${MUTATION_PYTHON:-$ROOT/.venv/bin/python}"
[ -x "$PY" ] || PY=python3
JOBS=${MUTATION_JOBS:-$(( $(nproc) >= 2 ? 2 : 1 ))}
SHARDS=${MUTATION_SHARDS-checkpoint:$JOBS data_readers:$JOBS engine:$JOBS}

# The modules asked for, as "name|files|tests|expr", with MUTATION_FILES applied.
wanted=("$@")
todo=()
for entry in "${MODULES[@]}"; do
  IFS='|' read -r name files tests expr <<<"$entry"
  if [ ${#wanted[@]} -gt 0 ] && [[ ! " ${wanted[*]} " =~ " $name " ]]; then continue; fi
  # MUTATION_FILES: some of the module's files only (a large module run in parts), a session of its own.
  if [ -n "${MUTATION_FILES:-}" ]; then
    files=$MUTATION_FILES
    name="$name.$(for f in $files; do basename "$f" .py; done | paste -sd+)"
  fi
  shards=1
  for spec in $SHARDS; do [ "${spec%%:*}" = "${entry%%|*}" ] && shards=${spec##*:}; done
  if [ "$shards" -gt 1 ]; then
    for ((k = 1; k <= shards; k++)); do todo+=("$name.${k}of$shards|$files|$tests|$expr"); done
  else
    todo+=("$name|$files|$tests|$expr")
  fi
done

# Lanes: the largest module first, each to the lane with the least work so far. A module's work is its
# mutant count from an earlier session, else a count of what cosmic-ray mutates (operators, comparisons,
# numbers, keywords), which comes within ~20% of it.
declare -a lane_work lane_modules
for ((j = 0; j < JOBS; j++)); do lane_work[j]=0; lane_modules[j]=""; done
while IFS=' ' read -r work index; do
  best=0
  for ((j = 1; j < JOBS; j++)); do (( lane_work[j] < lane_work[best] )) && best=$j; done
  lane_work[best]=$(( lane_work[best] + work ))
  lane_modules[best]+="$index "
done < <(for i in "${!todo[@]}"; do
  IFS='|' read -r name files _ <<<"${todo[$i]}"
  count=$(python3 -c "import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute('select count(*) from work_items').fetchone()[0])" "$WORK/$name.sqlite" 2>/dev/null || true)
  if [ -z "$count" ] || [ "$(cat "$WORK/$name.sqlite.files" 2>/dev/null)" != "$files" ]; then
    count=$(cd "$ROOT" && python3 -c '
import ast, sys
kinds = (ast.operator, ast.cmpop, ast.unaryop, ast.boolop, ast.Break, ast.Continue)
print(sum(isinstance(n, kinds) or (isinstance(n, ast.Constant) and type(n.value) in (int, float, bool))
          for f in sys.argv[1:] for n in ast.walk(ast.parse(open(f).read()))) * 3)' $files)
  fi
  [[ $name =~ \.[0-9]+of([0-9]+)$ ]] && count=$(( count / BASH_REMATCH[1] ))
  echo "$count $i"
done | sort -rn)

# One lane: its own copy of the checkout with its own editable install, then its modules one by one.
run_lane() {
  local lane=$1 indexes=$2
  local LANE="$WORK/lane$lane"
  mkdir -p "$LANE"
  rm -rf "$LANE/tree" && mkdir -p "$LANE/tree"
  tar -C "$ROOT" --exclude=./.venv --exclude=./.git --exclude=__pycache__ --exclude=.hypothesis \
    --exclude=.pytest_cache --exclude=./.benchmarks -cf - . | tar -C "$LANE/tree" -xf -
  if [ ! -x "$LANE/venv/bin/python" ]; then
    "$PY" -m venv --system-site-packages "$LANE/venv"
  fi
  "$LANE/venv/bin/python" -m pip install -q --no-deps -e "$LANE/tree"
  "$LANE/venv/bin/python" -c "import cosmic_ray" 2>/dev/null || "$LANE/venv/bin/python" -m pip install -q "cosmic-ray==8.7.0"
  "$LANE/venv/bin/python" -c "import coverage" 2>/dev/null || "$LANE/venv/bin/python" -m pip install -q "coverage>=7.4"
  local VENV="$LANE/venv/bin"
  # cosmic-ray's commands by entry point: a cosmic-ray from the system site-packages has no scripts in the venv.
  CR=("$VENV/python" -c 'import importlib, sys; m, f = sys.argv.pop(1).split(":"); sys.argv[0] = f; sys.exit(getattr(importlib.import_module(m), f)())')
  cd "$LANE/tree"
  "$VENV/python" -c "import neuraterm.core as c, sys; sys.exit(0 if c.__file__.startswith('$LANE/tree/') else 'the copy is not the installed package: ' + c.__file__)"
  server=
  trap stop_server EXIT
  for index in $indexes; do
    run_module "$LANE" "$VENV" "${todo[$index]}" >"$WORK/results/$(cut -d'|' -f1 <<<"${todo[$index]}").log" 2>&1 || true
    flock "$WORK/lock.out" cat "$WORK/results/$(cut -d'|' -f1 <<<"${todo[$index]}").log"
  done
}

stop_server() { if [ -n "${server:-}" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; server=; fi; }

run_module() {
  local LANE=$1 VENV=$2 name files tests expr
  IFS='|' read -r name files tests expr <<<"$3"
  local args=($tests)
  [ -n "$expr" ] && args+=(-k "$expr")
  # pytest runs in a server that has imported the heavy dependencies once and forks per mutant
  # (scripts/mutation_server.py); cosmic-ray's test command is its tiny client. A quoted command line
  # for cosmic-ray (it splits it with shlex).
  local socket_path="$LANE/$name.sock"
  local command
  command=$("$VENV/python" -c 'import shlex, sys; print(shlex.join(sys.argv[1:]))' \
    "$VENV/python" -S "$LANE/tree/scripts/mutation_client.py" "$socket_path" \
    -x -q -p no:cacheprovider -p no:randomly "${args[@]}")
  echo "== $name: $files (lane $(basename "$LANE"))"
  echo "   tests: ${args[*]}"
  local started
  started=$(date +%s)
  stop_server
  rm -f "$socket_path"
  nice -n 19 env CI=true "$VENV/python" "$LANE/tree/scripts/mutation_server.py" "$socket_path" "$LANE/tree" $tests \
    --mutate $files >"$WORK/results/$name.server" 2>&1 9>&- &
  server=$!
  until grep -q ready "$WORK/results/$name.server" 2>/dev/null; do
    kill -0 "$server" 2>/dev/null || { echo "   the test server did not start (see $WORK/results/$name.server)"; server=; return 1; }
    sleep 0.2
  done
  # Once on the unmutated copy: the tests pass, and which of them executes which statement (coverage).
  if ! nice -n 19 env PYTHONDONTWRITEBYTECODE=1 CI=true MUTATION_RECORD=1 bash -c "$command" >"$WORK/results/$name.baseline" 2>&1; then
    echo "   the tests fail without a mutant (see $WORK/results/$name.baseline)"; stop_server; return 1
  fi
  local baseline_started timeout
  baseline_started=$(date +%s)
  nice -n 19 env PYTHONDONTWRITEBYTECODE=1 CI=true bash -c "$command" >>"$WORK/results/$name.baseline" 2>&1 || true
  # A mutant that makes the tests hang is killed at the timeout: 10x the unmutated run, at least 60 s.
  timeout=${MUTATION_TIMEOUT:-$(( ($(date +%s) - baseline_started) * 10 > 60 ? ($(date +%s) - baseline_started) * 10 : 60 ))}
  local config="$LANE/$name.toml"
  local session="$WORK/$name.sqlite"
  {
    echo "[cosmic-ray]"
    printf 'module-path = [%s]\n' "$(for f in $files; do printf '"%s", ' "$f"; done | sed 's/, $//')"
    echo "timeout = $timeout"
    echo "excluded-modules = []"
    echo "test-command = $("$VENV/python" -c 'import json, sys; print(json.dumps(sys.argv[1]))' "$command")"
    echo "[cosmic-ray.distributor]"
    echo 'name = "local"'
    echo "[cosmic-ray.filters.operators-filter]"
    # A binary operator swapped for a bitwise or shift one is a TypeError on floats and nonsense on the
    # few integers here: dozens of mutants per file that any test kills, at ~10 s each on a busy machine.
    echo 'exclude-operators = ["core/ReplaceBinaryOperator_.*_(BitOr|BitAnd|BitXor|LShift|RShift)$"]'
  } >"$config"
  # A session is resumed: mutants already killed stay killed (a killed mutant stays killed when tests
  # are added), survivors are tried again against today's tests. MUTATION_FRESH=1 starts over.
  if [ "${MUTATION_FRESH:-0}" = 1 ] || [ ! -f "$session" ] || [ "$(cat "$session.files" 2>/dev/null)" != "$files" ]; then
    rm -f "$session"
    "${CR[@]}" cosmic_ray.cli:main init "$config" "$session" >/dev/null
    echo "$files" >"$session.files"
  else
    "$VENV/python" -c "import sqlite3, sys; db = sqlite3.connect(sys.argv[1]); db.execute(\"delete from work_results where test_outcome != 'KILLED'\"); db.commit()" "$session"
  fi
  "${CR[@]}" cosmic_ray.tools.filters.operators_filter:main "$session" "$config" >/dev/null
  # Annotations are never evaluated under `from __future__ import annotations`: no test can see a mutant there.
  "$VENV/python" "$LANE/tree/scripts/mutation_filter_annotations.py" "$session"
  if [ -n "${MUTATION_SAMPLE:-}" ]; then
    "$VENV/python" "$LANE/tree/scripts/mutation_sample.py" "$session" "$MUTATION_SAMPLE" "${MUTATION_SEED:-0}"
  fi
  if [[ $name =~ \.([0-9]+)of([0-9]+)$ ]]; then
    "$VENV/python" "$LANE/tree/scripts/mutation_sample.py" "$session" --shard "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}"
  fi
  nice -n 19 env CI=true "${CR[@]}" cosmic_ray.cli:main exec "$config" "$session" 9>&-
  stop_server
  "${CR[@]}" cosmic_ray.tools.report:report --no-show-output --show-diff --surviving-only "$session" >"$WORK/results/$name.txt" 2>&1 || true
  "$VENV/python" - "$session" "$name" "$(( $(date +%s) - started ))" <<'PY'
import sqlite3, sys
session, name, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3])
db = sqlite3.connect(session)
rows = db.execute("select test_outcome, worker_outcome from work_results where worker_outcome != 'SKIPPED'").fetchall()
skipped = db.execute("select count(*) from work_results where worker_outcome = 'SKIPPED'").fetchone()[0]
total = db.execute("select count(*) from work_items").fetchone()[0] - skipped
killed = sum(t == "KILLED" for t, w in rows)
survived = sum(t == "SURVIVED" for t, w in rows)
other = len(rows) - killed - survived
done = killed + survived
score = 100 * killed / done if done else 0
print(f"   {name}: {killed} of {done} mutants killed ({score:.1f}%), {survived} survived, "
      f"{other} not run, {total - len(rows)} pending; {seconds} s")
PY
}

started_all=$(date +%s)
lanes=()
set -m  # each lane in a process group of its own: stopping the run stops all it started
for ((j = 0; j < JOBS; j++)); do
  [ -n "${lane_modules[j]}" ] || continue
  run_lane $(( j + 1 )) "${lane_modules[j]}" 9>&- &
  lanes+=($!)
done
set +m
trap 'for pid in "${lanes[@]}"; do kill -- "-$pid" 2>/dev/null || true; done' EXIT INT TERM
for pid in "${lanes[@]}"; do wait "$pid" || true; done
trap - EXIT
# A module run in shards: its sessions' counts added up.
for base in $(printf '%s\n' "${todo[@]}" | cut -d'|' -f1 | sed -n 's/\.[0-9]*of[0-9]*$//p' | sort -u); do
  python3 - "$WORK" "$base" <<'PY'
import glob, re, sqlite3, sys
work, base = sys.argv[1], sys.argv[2]
killed = survived = 0
sessions = [s for s in sorted(glob.glob(f"{glob.escape(work)}/{glob.escape(base)}.*of*.sqlite"))
            if re.fullmatch(re.escape(base) + r"\.\d+of\d+\.sqlite", s.rsplit("/", 1)[1])]
for session in sessions:
    db = sqlite3.connect(session)
    for outcome, count in db.execute("select test_outcome, count(*) from work_results group by 1"):
        killed += count if outcome == "KILLED" else 0
        survived += count if outcome == "SURVIVED" else 0
done = killed + survived
print(f"   {base} (its {len(sessions)} shards): {killed} of {done} mutants killed "
      f"({100 * killed / done if done else 0:.1f}%), {survived} survived")
PY
done
echo "all: $(( $(date +%s) - started_all )) s in $JOBS lane(s)"
