//! Puts memory.x where the linker finds it, and builds in the county's firmware public key
//! (`WEIR_FIRMWARE_PUBLIC_KEY`, 64 hex digits, as `weir firmware keygen` prints it).
use std::{env, fs, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    fs::copy("memory.x", out.join("memory.x")).expect("memory.x is next to Cargo.toml");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");

    println!("cargo:rerun-if-env-changed=WEIR_FIRMWARE_PUBLIC_KEY");
    let key = match env::var("WEIR_FIRMWARE_PUBLIC_KEY") {
        Ok(hex) => {
            let hex = hex.trim();
            assert!(
                hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
                "WEIR_FIRMWARE_PUBLIC_KEY must be 64 hex digits (weir firmware keygen prints it)"
            );
            (0..32)
                .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex digits"))
                .collect::<Vec<u8>>()
        }
        Err(_) => {
            println!("cargo:warning=WEIR_FIRMWARE_PUBLIC_KEY is not set: this firmware refuses every update");
            vec![0; 32]
        }
    };
    fs::write(
        out.join("firmware_key.rs"),
        format!(
            "/// The county's firmware public key.\npub const FIRMWARE_KEY: [u8; 32] = {key:?};\n"
        ),
    )
    .expect("writing firmware_key.rs");
}
