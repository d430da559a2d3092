//! `weir`: the gateway binary.

fn main() {
    eprintln!("weir: the gateway is not built yet; the wire contract is in firmware/contract.");
    std::process::exit(2);
}
