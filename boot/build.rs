//! Relinks the image when the linker script changes (cargo does not track it).
fn main() {
    println!("cargo:rerun-if-changed=../linker.ld");
    println!("cargo:rerun-if-changed=build.rs");
}
