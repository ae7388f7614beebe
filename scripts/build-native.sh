#!/usr/bin/env bash
# Builds native/build/Release/badexpert.node when it is missing or older than its sources.
# BADEXPERT_LIBTORCH selects another libtorch prefix; a change of prefix forces a rebuild.
set -euo pipefail
cd "$(dirname "$0")/.."
out=native/build/Release/badexpert.node
stamp=native/build/libtorch-prefix
prefix="${BADEXPERT_LIBTORCH:-system}"
needs=0
# rebuild: configure and compile everything; build: only what changed (make tracks the headers).
mode=rebuild
if [ ! -f "$out" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$prefix" ]; then
  needs=1
elif [ -n "$(find native/src native/binding.gyp -newer "$out" -print -quit)" ]; then
  needs=1
  if [ -f native/build/Makefile ] && [ -z "$(find native/binding.gyp -newer "$out" -print -quit)" ]; then mode=build; fi
fi
if [ $needs -eq 1 ]; then
  printf '[setup] building the native addon against libtorch: %s (about a minute)\n' "$prefix" >&2
  jobs=$(nproc 2>/dev/null || echo 2)
  # Inside npm's install of the published package, npm names its own node-gyp; in the repository
  # the devDependency is used.
  if [ -n "${npm_config_node_gyp:-}" ] && [ -f "${npm_config_node_gyp}" ]; then
    gyp=(node "$npm_config_node_gyp")
  else
    gyp=(npx --no-install node-gyp)
  fi
  JOBS=$jobs "${gyp[@]}" "$mode" --directory native -j "$jobs" --loglevel=error >&2
  printf '%s' "$prefix" > "$stamp"
fi
