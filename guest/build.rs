//! Link flags for the static, libc-free `/init` binary (only bins get them, so
//! the library's host unit tests link normally).

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    for arg in ["-nostartfiles", "-nostdlib", "-static"] {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
}
