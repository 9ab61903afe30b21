//! Compiles every `bpf/*.bpf.c` into a libbpf-rs skeleton in `OUT_DIR`, and links what libelf
//! needs statically.
use std::env;
use std::path::PathBuf;
use std::process::Command;

use libbpf_cargo::SkeletonBuilder;

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR is set by cargo"));
    // usdt.bpf.h reaches <asm/errno.h>, which clang -target bpf does not look for under the
    // multiarch directory where Debian keeps it.
    let multiarch = "/usr/include/x86_64-linux-gnu";
    // The kernel side reads x86-64 registers by name (struct pt_regs, bpf/functions.bpf.h).
    if env::var("CARGO_CFG_TARGET_ARCH").as_deref() != Ok("x86_64") {
        panic!("pyprobe's BPF programs are written for x86-64 only");
    }
    link_what_libelf_needs();
    println!("cargo:rerun-if-changed=bpf");
    let mut sources: Vec<PathBuf> = std::fs::read_dir("bpf")
        .expect("bpf/ holds the BPF sources")
        .map(|e| e.expect("readable bpf/ entry").path())
        .filter(|p| p.to_string_lossy().ends_with(".bpf.c"))
        .collect();
    sources.sort();
    for src in sources {
        let file = src.file_name().unwrap().to_string_lossy().into_owned();
        let name = file.trim_end_matches(".bpf.c");
        println!("cargo:rerun-if-changed={}", src.display());
        SkeletonBuilder::new()
            .source(&src)
            .clang_args([
                "-Wall",
                "-O2",
                "-mcpu=v3",
                "-D__TARGET_ARCH_x86",
                "-idirafter",
                multiarch,
            ])
            .build_and_generate(out.join(format!("{name}.skel.rs")))
            .unwrap_or_else(|e| panic!("building {}: {e:#}", src.display()));
    }
}

/// libbpf-sys links libelf.a and libz.a (libbpf-rs's "static" feature, with the directory in
/// .cargo/config.toml), but not what a distribution's libelf was built with besides (zstd in
/// Debian 13's): pkg-config names it.
fn link_what_libelf_needs() {
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    let Ok(out) = Command::new("pkg-config")
        .args(["--static", "--libs-only-l", "libelf"])
        .output()
    else {
        return;
    };
    let flags = String::from_utf8_lossy(&out.stdout);
    for lib in flags
        .split_whitespace()
        .filter_map(|f| f.strip_prefix("-l"))
    {
        if !matches!(lib, "elf" | "z") {
            // A link argument comes after every library on the linker's command line, so after
            // libbpf-sys's libelf.a, whose references it resolves.
            println!("cargo:rustc-link-arg=-l:lib{lib}.a");
        }
    }
}
