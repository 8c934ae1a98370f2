//! Compiles the Protobuf schemas into Rust with protox, a pure-Rust compiler (no protoc is
//! needed or downloaded): the messages of the client protocol (src/protocol/client.proto) and of
//! the proxy calls (src/proxy/proxy.proto) with prost, and the server gRPC API
//! (src/api/grpc/api.proto) with prost and tonic's server code.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=src/protocol/client.proto");
    println!("cargo:rerun-if-changed=src/proxy/proxy.proto");
    let descriptors = protox::compile(["client.proto", "proxy.proto"], ["src/protocol", "src/proxy"])?;
    prost_build::Config::new().bytes(["."]).btree_map(["."]).compile_fds(descriptors)?;

    println!("cargo:rerun-if-changed=src/api/grpc/api.proto");
    let api = protox::compile(["api.proto"], ["src/api/grpc"])?;
    tonic_prost_build::configure()
        .build_client(false)
        .build_server(true)
        .build_transport(false)
        // The rpcs gyre does not implement answer UNIMPLEMENTED without a handler each.
        .generate_default_stubs(true)
        .bytes(".")
        .btree_map(".")
        .compile_fds(api)?;
    Ok(())
}
