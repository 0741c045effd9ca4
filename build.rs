//! Compiles `proto/` with the pure-Rust `protox` compiler, so a fresh machine needs no
//! `protoc`, and writes the encoded descriptor set that server reflection serves.

use std::{env, fs, path::PathBuf};

use prost::Message as _;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_dir = PathBuf::from("proto/tenancy/v1");
    println!("cargo:rerun-if-changed=proto");

    let mut files: Vec<PathBuf> = fs::read_dir(&proto_dir)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "proto"))
        .collect();
    files.sort();

    let descriptors = protox::compile(&files, ["proto"])?;

    // `compile_fds` ignores `file_descriptor_set_path`, so the set reflection needs is
    // written here by hand.
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(
        out_dir.join("tenancy_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;

    tonic_prost_build::configure()
        // Deterministic encoding: request fingerprints for idempotent retries hash the
        // encoded request, and `Struct` holds a map.
        .btree_map(".")
        .generate_default_stubs(true)
        .compile_fds(descriptors)?;
    Ok(())
}
