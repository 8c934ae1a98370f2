//! Compiles the Protobuf messages of the client protocol (src/protocol/client.proto) and of the
//! proxy calls (src/proxy/proxy.proto) into Rust with prost, using protox, a pure-Rust
//! compiler: no protoc is needed or downloaded.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=src/protocol/client.proto");
    println!("cargo:rerun-if-changed=src/proxy/proxy.proto");
    let descriptors = protox::compile(["client.proto", "proxy.proto"], ["src/protocol", "src/proxy"])?;
    prost_build::Config::new().bytes(["."]).btree_map(["."]).compile_fds(descriptors)?;
    Ok(())
}
