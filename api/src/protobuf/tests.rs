//! Tests.
#[test]
fn dump() {
    for name in [
        "configmap",
        "secret",
        "deployment",
        "namespace",
        "service",
        "job",
        "hpa",
    ] {
        let body = std::fs::read(format!(
            "{}/src/protobuf/testdata/{name}.pb",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        println!("{name}: {}", super::decode_to_json(&body).unwrap());
    }
}
