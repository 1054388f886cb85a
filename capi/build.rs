// The shared library's soname: applications link against libkeyringrs.so.0.
fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libkeyringrs.so.0");
}
