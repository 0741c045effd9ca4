//! Code generated from `proto/tenancy/v1`: messages, servers and clients. Another Rust
//! service can depend on this crate and use `tenancy::pb::user_service_client::…`.

#![allow(clippy::all, missing_docs)]

tonic::include_proto!("tenancy.v1");

/// The encoded descriptor set of `proto/`, served by reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/tenancy_descriptor.bin"));
