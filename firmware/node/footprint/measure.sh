#!/usr/bin/env bash
# Builds the footprint binary for thumbv7em-none-eabihf (release) and prints what the node
# core costs: flash (code and constants), static RAM (the Node) and the largest stack frames.
# Needs llvm-size, llvm-nm and llvm-objdump (Debian: llvm).
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/work/target-node}"
cargo build --release --quiet
elf="$CARGO_TARGET_DIR/thumbv7em-none-eabihf/release/weir-node-footprint"

llvm-size -A "$elf" | awk '
  $1==".vector_table" || $1==".text" || $1==".rodata" { flash += $2; printf "%-14s %7d\n", $1, $2 }
  $1==".data" || $1==".bss" { printf "%-14s %7d\n", $1, $2 }
  END { printf "flash (vector table + code + constants): %d bytes\n", flash }'
node=$((16#$(llvm-nm -S -C "$elf" | awk '/ weir_node_footprint::NODE::/ { print $2 }')))
echo "static RAM of the Node: $node bytes (the RamFlash stand-ins in .data are the board's flash)"
echo "largest stack frames (bytes, function):"
llvm-objdump -d --no-show-raw-insn "$elf" | awk '
  /^[0-9a-f]+ </ { fn = $2; gsub(/[<>:]/, "", fn) }
  /sub(\.w|w)?[ \t]+sp, (sp, )?#[0-9]+/ {
    n = $NF; sub(/#/, "", n); if (n + 0 >= 512) printf "%7d  %s\n", n, fn }' \
  | sort -rn | head -6 | { command -v llvm-cxxfilt >/dev/null && llvm-cxxfilt || cat; }
