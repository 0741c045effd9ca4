//! Generates the client stubs and messages from the repository's `proto/` with the
//! pure-Rust `protox` compiler, so a consumer's machine needs no `protoc`.

use std::{fs, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from("../../proto");
    println!("cargo:rerun-if-changed=../../proto");

    let mut files: Vec<PathBuf> = fs::read_dir(root.join("tenancy/v1"))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "proto"))
        .collect();
    files.sort();

    let descriptors = protox::compile(&files, [&root])?;
    tonic_prost_build::configure()
        .build_server(false)
        // The same map type as the server's messages, so code moving between the two
        // (the server's tests) builds `Struct`s and maps the same way.
        .btree_map(".")
        .compile_fds(descriptors)?;
    Ok(())
}
