#!/usr/bin/env bash
# Installs coop from the build tree into a scratch prefix, builds the consumer
# project against it with find_package(coop), and runs the example and
# the generator example (coop::generator alone).
#   run.sh BUILD_DIR SOURCE_DIR SCRATCH_DIR
set -euo pipefail
build=$1 src=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
cmake --install "$build" --prefix "$work/prefix" >/dev/null
cmake -S "$src/test/consumer" -B "$work/build" -G Ninja -DCMAKE_PREFIX_PATH="$work/prefix" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$work/build" >/dev/null
out=$("$work/build/example")
printf '%s\n' "$out"
[[ $out == $'timed out\n3 echoed' ]]
out=$("$work/build/generator_example")
printf '%s\n' "$out"
[[ $out == 'sum 6' ]]
