use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Honour PROTOC when set; otherwise use the vendored protoc so no system package is needed.
    if std::env::var_os("PROTOC").is_none() {
        // SAFETY: build scripts are single-threaded; nothing else reads the environment here.
        unsafe { std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?) };
    }
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    println!("cargo:rerun-if-changed=gitflock.proto");
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("gitflock_descriptor.bin"))
        .compile_protos(&["gitflock.proto"], &["."])?;
    Ok(())
}
