//! Compiles `proto/onnx.proto` with `protox` (pure Rust, no system `protoc`) and feeds
//! the descriptors to `prost-build`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/onnx.proto");
    let descriptors = protox::compile(["proto/onnx.proto"], ["proto"])?;
    prost_build::Config::new()
        // Weights stay zero-copy: decoding from a `Bytes` buffer slices it instead of copying.
        .bytes([".onnx.TensorProto.raw_data"])
        .compile_fds(descriptors)?;
    Ok(())
}
