//! Compiles the client protocol's Protobuf messages (src/protocol/client.proto) into Rust with
//! prost, using protox, a pure-Rust compiler: no protoc is needed or downloaded.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=src/protocol/client.proto");
    let descriptors = protox::compile(["client.proto"], ["src/protocol"])?;
    prost_build::Config::new().bytes(["."]).btree_map(["."]).compile_fds(descriptors)?;
    Ok(())
}
