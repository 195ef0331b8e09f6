//! Every sample manifest in `manifests/` is valid as it is: the API server accepts each with
//! `kubectl apply --dry-run=server` (defaults, validation, strict field checks), so the samples
//! never rot. A dry run stores nothing, which is checked too.

use std::path::PathBuf;

use tugboat_e2e::{kubectl_or_skip, shared};

fn manifests() -> Vec<PathBuf> {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../manifests"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("reading manifests/")
        .map(|entry| entry.expect("reading manifests/").path())
        .filter(|path| {
            path.extension()
                .is_some_and(|ext| ext == "yaml" || ext == "yml")
        })
        .collect();
    files.sort();
    files
}

#[test]
fn every_sample_manifest_passes_a_server_side_dry_run() {
    if kubectl_or_skip().is_none() {
        return;
    }
    let files = manifests();
    assert!(files.len() >= 4, "samples: {files:?}");
    let cluster = shared().unwrap();
    let k = cluster.kubectl().unwrap();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let documents = text
            .split("\n---")
            .filter(|doc| doc.lines().any(|line| line.starts_with("kind:")))
            .count();
        let out = k
            .ok(&["apply", "--dry-run=server", "-f", file.to_str().unwrap()])
            .unwrap_or_else(|error| panic!("{}: {error:#}", file.display()));
        let applied: Vec<&str> = out
            .lines()
            .filter(|l| l.ends_with("(server dry run)"))
            .collect();
        assert_eq!(applied.len(), documents, "{}:\n{out}", file.display());
    }
    // Nothing was stored.
    let pods = k
        .ok(&["get", "pods,deployments,configmaps", "-o", "name"])
        .unwrap();
    for name in ["pod/crashloop", "deployment.apps/web", "configmap/greeting"] {
        assert!(
            !pods.lines().any(|l| l == name),
            "{name} was stored:\n{pods}"
        );
    }
}
