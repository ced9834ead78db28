#!/usr/bin/env bash
# tests/fuzz/run.sh [SECONDS] [TARGET...]
#
# A short fuzz pass: build the libFuzzer targets with clang in build/fuzz
# (-DFL_FUZZ=ON, ASan+UBSan; the library instrumented for coverage) and run
# each for SECONDS (default 20) on a scratch copy of its seed corpus, so the
# repository corpus only changes when someone adds a seed on purpose.
# A crash, leak or failed property stops the pass: the input is kept in
# build/fuzz/artifacts/<target>/ -- add it to tests/fuzz/corpus/<target>/
# as a regression seed (the *_corpus ctests replay it in every build).
# Needs clang and its libFuzzer runtime (Debian: clang, libclang-rt-14-dev
# or the clang-14 package that ships it).  Exits 77 when clang is missing,
# unless CI=true.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-20}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(fuzz_parse fuzz_validate fuzz_url fuzz_cli fuzz_body)

cc=$(command -v clang || command -v clang-14 || true)
if [ -z "$cc" ]; then
  echo "fuzz: clang not found: fuzzing SKIPPED" >&2
  [ "${CI:-}" = true ] && exit 1
  exit 77
fi
dir=build/fuzz
cmake -S . -B $dir -DCMAKE_C_COMPILER="$cc" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DFL_FUZZ=ON -DFL_SANITIZE=ON -DFL_DEBUG_HOOKS=OFF >/dev/null
cmake --build $dir -j"$(nproc)" --target "${targets[@]/%/_fuzzer}" >/dev/null

status=0
for t in "${targets[@]}"; do
  work=$(mktemp -d "${TMPDIR:-/tmp}/fl-fuzz.XXXXXX")
  cp tests/fuzz/corpus/$t/* "$work"/ 2>/dev/null || true
  mkdir -p $dir/artifacts/$t
  # -close_fd_mask=3: the targets' own stdout/stderr (the CLI's messages)
  # are noise; libFuzzer still reports through its own descriptor.
  if "$dir/tests/fuzz/${t}_fuzzer" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
       -max_len=4096 -close_fd_mask=3 -print_final_stats=1 \
       -artifact_prefix="$dir/artifacts/$t/" "$work" >"$dir/artifacts/$t.log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/artifacts/$t.log")
    cov=$(grep -o 'cov: [0-9]*' "$dir/artifacts/$t.log" | tail -n 1)
    echo "fuzz: $t: ${secs}s, ${runs:-?} runs, ${cov:-cov: ?}, no crash"
  else
    echo "fuzz: $t: FAILED; input kept in $dir/artifacts/$t/ (log: $dir/artifacts/$t.log)" >&2
    tail -n 40 "$dir/artifacts/$t.log" >&2
    status=1
  fi
  rm -rf "$work"
done
exit $status
