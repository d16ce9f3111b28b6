//! With feature `loader`: compiles the BPF scheduler with clang and generates
//! its libbpf-rs skeleton. Without it there is nothing to build.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    #[cfg(feature = "loader")]
    bpf::build();
}

#[cfg(feature = "loader")]
mod bpf {
    use std::path::{Path, PathBuf};

    const SOURCE: &str = "src/bpf/fifo.bpf.c";

    pub fn build() {
        println!("cargo:rerun-if-changed={SOURCE}");
        println!("cargo:rerun-if-changed=src/bpf/scx.h");
        println!("cargo:rerun-if-env-changed=CLANG");
        let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR is set"));
        let clang = find_clang().unwrap_or_else(|| {
            panic!(
                "no clang found for the BPF build: install clang (Debian: clang-16 or clang-19), \
                 or set CLANG=/path/to/clang"
            )
        });
        libbpf_cargo::SkeletonBuilder::new()
            .source(SOURCE)
            .clang(&clang)
            .clang_args(["-Wall", "-Wno-unused-function", "-O2", "-g"])
            .build_and_generate(out.join("fifo.skel.rs"))
            .unwrap_or_else(|e| panic!("building {SOURCE} with {}: {e:#}", clang.display()));
    }

    /// `$CLANG`, else the newest Debian clang on PATH, else `clang`.
    fn find_clang() -> Option<PathBuf> {
        if let Some(c) = std::env::var_os("CLANG") {
            return Some(c.into());
        }
        let path = std::env::var_os("PATH")?;
        ["clang-19", "clang-18", "clang-17", "clang-16", "clang"]
            .iter()
            .flat_map(|name| std::env::split_paths(&path).map(move |d| d.join(name)))
            .find(|p| Path::is_file(p))
    }
}
