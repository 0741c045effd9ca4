//! Compiles `proto/` with the pure-Rust `protox` compiler, so a fresh machine needs no
//! `protoc`; writes the encoded descriptor set that server reflection serves, and from
//! the `google.api.http` annotations the HTTP/JSON route table and the OpenAPI document
//! (`build/http_routes.rs`, `build/openapi.rs`).

use std::{env, fs, path::PathBuf};

#[path = "build/http_routes.rs"]
mod http_routes;
#[path = "build/openapi.rs"]
mod openapi;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_dir = PathBuf::from("proto/tenancy/v1");
    println!("cargo:rerun-if-changed=proto");
    println!("cargo:rerun-if-changed=build");

    let mut files: Vec<PathBuf> = fs::read_dir(&proto_dir)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "proto"))
        .collect();
    files.sort();

    let mut compiler = protox::Compiler::new(["proto"])?;
    compiler
        .include_source_info(true)
        .include_imports(true)
        .open_files(&files)?;
    let pool = compiler.descriptor_pool();

    // `compile_fds` ignores `file_descriptor_set_path`, so the set reflection needs is
    // written here by hand, with the extension options (the HTTP annotations) kept.
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(
        out_dir.join("tenancy_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;

    let routes = http_routes::from_pool(&pool)?;
    fs::write(
        out_dir.join("http_routes.rs"),
        http_routes::to_rust(&routes),
    )?;
    fs::write(
        out_dir.join("openapi.json"),
        openapi::document(&pool, &routes)?,
    )?;

    tonic_prost_build::configure()
        // Deterministic encoding: request fingerprints for idempotent retries hash the
        // encoded request, and `Struct` holds a map.
        .btree_map(".")
        .generate_default_stubs(true)
        .compile_fds(compiler.file_descriptor_set())?;
    Ok(())
}
