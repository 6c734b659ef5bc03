//! Links the `toolshed` executable with packed relative relocations
//! (`DT_RELR`, binutils 2.38 and glibc 2.36 on). A position-independent
//! executable carries a relocation for every pointer in its read-only data,
//! which the loader reads once at start and which then stay resident: in
//! `.rela.dyn` that is 24 bytes a pointer, megabytes for this binary;
//! packed, it is a bitmap of a few kilobytes. The executable stays
//! position-independent, so its address is still randomized.

fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.ends_with("-linux-gnu") {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
