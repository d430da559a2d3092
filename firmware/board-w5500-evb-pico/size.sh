#!/usr/bin/env bash
# Builds the W5500-EVB-Pico firmware (release, thumbv6m-none-eabi), prints its section sizes
# and its flash and static RAM totals, writes the raw binary next to the ELF, and fails if the
# firmware is over its budget.
#
# Budget: flash (vector table + code + constants + .data's initial values + boot2) under
# 128 KiB; static RAM (.data + .bss + .uninit) under 48 KiB. The stacks are not counted:
# core 0's is the rest of the RAM, core 1's is a static in .bss.
#
# Tools: llvm-size and llvm-objcopy from Debian's `llvm` package (`apt-get install llvm`; the
# plain names or the versioned ones such as llvm-size-14). Failing those, the ones of
# `rustup component add llvm-tools` in the toolchain's sysroot.
set -euo pipefail
cd "$(dirname "$0")"
# Cargo's own target/ of this crate unless CARGO_TARGET_DIR says otherwise.
TARGET_DIR="${CARGO_TARGET_DIR:-target}"

FLASH_BUDGET=131072
RAM_BUDGET=49152

tool() {
    local name=$1 found
    if command -v "$name" >/dev/null; then
        echo "$name"
        return
    fi
    found=$(compgen -c "$name-" | grep -E "^$name-[0-9]+$" | sort -t- -k3 -n | tail -1 || true)
    if [ -n "$found" ]; then
        echo "$found"
        return
    fi
    found="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/$name"
    if [ -x "$found" ]; then
        echo "$found"
        return
    fi
    echo "size.sh: $name not found: apt-get install llvm (or rustup component add llvm-tools)" >&2
    exit 2
}
SIZE=$(tool llvm-size)
OBJCOPY=$(tool llvm-objcopy)

cargo build --release --quiet
elf="$TARGET_DIR/thumbv6m-none-eabi/release/weir-node-w5500-evb-pico"
bin="$(dirname "$elf")/weir-node-w5500-evb-pico.bin"

"$SIZE" -A "$elf" | awk -v flash_budget="$FLASH_BUDGET" -v ram_budget="$RAM_BUDGET" '
    $1 == ".boot2" || $1 == ".vector_table" || $1 == ".text" || $1 == ".rodata" {
        flash += $2; printf "%-14s %7d  flash\n", $1, $2 }
    $1 == ".data" { flash += $2; ram += $2; printf "%-14s %7d  flash (initial values) and RAM\n", $1, $2 }
    $1 == ".bss" || $1 == ".uninit" { ram += $2; printf "%-14s %7d  RAM\n", $1, $2 }
    END {
        printf "flash: %d of %d bytes (%.1f%%)\n", flash, flash_budget, 100 * flash / flash_budget
        printf "RAM:   %d of %d bytes (%.1f%%)\n", ram, ram_budget, 100 * ram / ram_budget
        over = 0
        if (flash > flash_budget) { print "OVER BUDGET: flash exceeds 128 KiB" > "/dev/stderr"; over = 1 }
        if (ram > ram_budget) { print "OVER BUDGET: static RAM exceeds 48 KiB" > "/dev/stderr"; over = 1 }
        exit over
    }'

# The raw image, from 0x1000_0000 (boot2 first), for `weir node uf2`.
"$OBJCOPY" -O binary "$elf" "$bin"
echo "elf: $elf"
echo "bin: $bin ($(stat -c %s "$bin") bytes, starts at 0x10000000)"
