//! Serialises a scenario TOML file to the postcard `/scenario.bin` the guest reads.
//!
//! `cargo run -p guest --example pack-scenario -- fixtures/scenarios/smoke.toml scenario.bin`
//! (for hand-made initramfs images; `cargo xtask` packs its own).

use trace_format::scenario::Scenario;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output] = args.as_slice() else {
        eprintln!("usage: pack-scenario <scenario.toml> <scenario.bin>");
        std::process::exit(2);
    };
    let sc = Scenario::load(input).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2);
    });
    // The guest trusts /scenario.bin: check it here, as xtask does.
    if let Err(e) = sc.validate() {
        eprintln!("{input}: {e}");
        std::process::exit(2);
    }
    let bytes = postcard::to_allocvec(&sc).expect("a scenario always serialises");
    std::fs::write(output, &bytes).unwrap_or_else(|e| {
        eprintln!("cannot write {output}: {e}");
        std::process::exit(1);
    });
    println!("{}: {} bytes", sc.name, bytes.len());
}
