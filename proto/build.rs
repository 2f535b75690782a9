//! Compiles the .proto files with protox (a pure-Rust protoc), so building
//! this crate needs no system `protoc`. The encoded descriptor set is kept in
//! OUT_DIR for gRPC reflection.

use prost::Message;
use std::{env, fs, path::PathBuf};

const PROTOS: &[&str] = &[
    "airbloc/v1/node.proto",
    "airbloc/v1/admin.proto",
    "airbloc/v1/provider.proto",
    "airbloc/v1/consumer.proto",
    "airbloc/v1/keeper.proto",
    "airbloc/v1/registry.proto",
    "airbloc/p2p/v1/messages.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    let fds = protox::compile(PROTOS, ["."])?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(out_dir.join("airbloc_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure().build_client(true).build_server(true).compile_fds(fds)?;
    Ok(())
}
