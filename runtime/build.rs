//! Compiles the vendored CRI v1 proto (k8s.io/cri-api, runtime/v1) into a tonic client.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/api.proto");
    // Client only: the agent talks to containerd, it never serves CRI.
    tonic_prost_build::configure()
        .build_server(false)
        .compile_protos(&["proto/api.proto"], &["proto"])?;
    Ok(())
}
