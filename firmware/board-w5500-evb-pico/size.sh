#!/usr/bin/env bash
# Builds the W5500-EVB-Pico firmware and its boot loader (release, thumbv6m-none-eabi), prints
# their section sizes and flash and static RAM totals, writes the raw binaries next to the
# ELFs, and fails if either is over its budget.
#
# Budgets. The firmware: flash (vector table + code + constants + .data's initial values)
# under FLASH_BUDGET, static RAM (.data + .bss + .uninit) under 48 KiB; the stacks are not
# counted: core 0's is the rest of the RAM, core 1's is a static in .bss. The boot loader:
# flash (with boot2) under 24 KiB, its space before the STATE partition; static RAM under
# 8 KiB. See README.md for why the numbers are what they are.
#
# Tools: llvm-size and llvm-objcopy from Debian's `llvm` package (`apt-get install llvm`; the
# plain names or the versioned ones such as llvm-size-14). Failing those, the ones of
# `rustup component add llvm-tools` in the toolchain's sysroot.
set -euo pipefail
cd "$(dirname "$0")"
# Cargo's own target/ of this crate unless CARGO_TARGET_DIR says otherwise.
TARGET_DIR="${CARGO_TARGET_DIR:-target}"

FLASH_BUDGET=163840
RAM_BUDGET=49152
BOOT_FLASH_BUDGET=24576
BOOT_RAM_BUDGET=8192

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

# report ELF FLASH_BUDGET RAM_BUDGET: section sizes and totals; fails if over a budget.
report() {
    "$SIZE" -A "$1" | awk -v flash_budget="$2" -v ram_budget="$3" '
        $1 == ".boot2" || $1 == ".vector_table" || $1 == ".text" || $1 == ".rodata" {
            flash += $2; printf "%-14s %7d  flash\n", $1, $2 }
        $1 == ".data" { flash += $2; ram += $2; printf "%-14s %7d  flash (initial values) and RAM\n", $1, $2 }
        $1 == ".bss" || $1 == ".uninit" { ram += $2; printf "%-14s %7d  RAM\n", $1, $2 }
        END {
            printf "flash: %d of %d bytes (%.1f%%)\n", flash, flash_budget, 100 * flash / flash_budget
            printf "RAM:   %d of %d bytes (%.1f%%)\n", ram, ram_budget, 100 * ram / ram_budget
            over = 0
            if (flash > flash_budget) { print "OVER BUDGET: flash" > "/dev/stderr"; over = 1 }
            if (ram > ram_budget) { print "OVER BUDGET: static RAM" > "/dev/stderr"; over = 1 }
            exit over
        }'
}

cargo build --release --quiet
elf="$TARGET_DIR/thumbv6m-none-eabi/release/weir-node-w5500-evb-pico"
bin="$(dirname "$elf")/weir-node-w5500-evb-pico.bin"
echo "firmware (ACTIVE slot, 0x10007000):"
report "$elf" "$FLASH_BUDGET" "$RAM_BUDGET"
# The raw image, from 0x1000_7000 (the ACTIVE slot): for `weir node uf2` and for
# `weir firmware sign` / `add` (it carries its version tag).
"$OBJCOPY" -O binary "$elf" "$bin"
echo "elf: $elf"
echo "bin: $bin ($(stat -c %s "$bin") bytes, starts at 0x10007000)"

# The boot loader: its own workspace in bootloader/.
BOOT_TARGET_DIR="${CARGO_TARGET_DIR:-bootloader/target}"
(cd bootloader && cargo build --release --quiet)
boot_elf="$BOOT_TARGET_DIR/thumbv6m-none-eabi/release/weir-boot-w5500-evb-pico"
boot_bin="$(dirname "$boot_elf")/weir-boot-w5500-evb-pico.bin"
echo
echo "boot loader (0x10000000, boot2 first):"
report "$boot_elf" "$BOOT_FLASH_BUDGET" "$BOOT_RAM_BUDGET"
"$OBJCOPY" -O binary "$boot_elf" "$boot_bin"
echo "elf: $boot_elf"
echo "bin: $boot_bin ($(stat -c %s "$boot_bin") bytes, starts at 0x10000000)"
