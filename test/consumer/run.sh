#!/usr/bin/env bash
# Installs coop from the build tree into a scratch prefix, builds the consumer
# project against it with find_package(coop), and runs the user example
# (example.cpp: an echo server, three clients, a timeout) and the generator
# example (coop::generator alone); checks that coop::coop's
# -fstack-clash-protection reaches a consumer and that a target can turn it off.
#   run.sh BUILD_DIR SOURCE_DIR SCRATCH_DIR
set -euo pipefail
build=$1 src=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
cmake --install "$build" --prefix "$work/prefix" >/dev/null
cmake -S "$src/test/consumer" -B "$work/build" -G Ninja -DCMAKE_PREFIX_PATH="$work/prefix" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_EXPORT_COMPILE_COMMANDS=ON >/dev/null
cmake --build "$work/build" >/dev/null
out=$("$work/build/example")
printf '%s\n' "$out"
[[ $out == $'timed out\n3 echoed' ]]
out=$("$work/build/generator_example")
printf '%s\n' "$out"
[[ $out == 'sum 6' ]]
commands=$(grep '"command"' "$work/build/compile_commands.json")
if grep -q -- '-fstack-clash-protection' "$work"/prefix/lib*/cmake/coop/coopTargets.cmake; then
  grep -- '-c [^ ]*/example\.cpp' <<<"$commands" | grep -q -- '-fstack-clash-protection'
  if grep -- '-c [^ ]*/unprotected\.cpp' <<<"$commands" | grep -q -- '-fstack-clash-protection'; then
    echo 'COOP_STACK_CLASH_PROTECTION OFF did not turn -fstack-clash-protection off'
    exit 1
  fi
  echo 'stack-clash protection: on for example, off for unprotected'
else
  echo 'stack-clash protection: not supported by the compiler coop was built with'
fi
