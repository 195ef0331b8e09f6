//! Local images: a one-layer OCI image built from the host's static busybox, and importing
//! OCI or docker archives into containerd's `k8s.io` namespace (the only one CRI sees).
//!
//! Import goes through `ctr images import`, which ships with containerd, unpacks into the
//! snapshotter CRI uses, and reads both archive formats.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// The containerd namespace CRI works in.
pub const CRI_NAMESPACE: &str = "k8s.io";

/// How long one import may take; the busybox image imports in well under a second.
const IMPORT_TIMEOUT: Duration = Duration::from_secs(120);

const MEDIA_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MEDIA_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const MEDIA_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const MEDIA_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

/// A fixed timestamp for every file, so the same busybox always gives the same image digest.
const EPOCH: u64 = 0;

/// Errors building or importing images.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The host busybox could not be read.
    #[error("cannot read {path}: {source} (install it: apt-get install busybox-static)")]
    Busybox {
        /// The binary.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Writing the archive in memory failed.
    #[error("cannot build the image archive: {0}")]
    Archive(#[source] std::io::Error),
    /// `ctr` is not installed.
    #[error("`ctr` not found in PATH (install it: apt-get install containerd)")]
    CtrMissing,
    /// The archive file could not be opened.
    #[error("cannot open image archive {path}: {source}")]
    Open {
        /// The archive.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `ctr images import` failed.
    #[error("image import failed: {0}")]
    Import(String),
    /// `ctr images import` took too long.
    #[error("image import did not finish within {0:?}")]
    ImportTimeout(Duration),
}

/// Result alias of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The OCI platform name of this host's architecture.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

fn sha256_hex(data: &[u8]) -> String {
    format!("{:x}", Sha256::digest(data))
}

/// An OCI content descriptor.
fn descriptor(media_type: &str, data: &[u8]) -> serde_json::Value {
    serde_json::json!({
        "mediaType": media_type,
        "digest": format!("sha256:{}", sha256_hex(data)),
        "size": data.len(),
    })
}

/// The busybox applets to link, from `busybox --list`; a small fixed set if that fails.
fn applets(busybox: &Path) -> Vec<String> {
    let listed = std::process::Command::new(busybox)
        .arg("--list")
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(str::trim)
                // Names only: an applet name with a slash would escape `bin/`.
                .filter(|l| !l.is_empty() && !l.contains('/') && *l != "busybox")
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    if !listed.is_empty() {
        return listed;
    }
    [
        "sh", "sleep", "httpd", "echo", "cat", "ls", "true", "false", "wget", "env", "kill", "ps",
    ]
    .into_iter()
    .map(String::from)
    .collect()
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(EPOCH);
    h.set_size(size);
    h
}

fn add_dir(b: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32) -> std::io::Result<()> {
    let mut h = header(tar::EntryType::Directory, mode, 0);
    b.append_data(&mut h, path, std::io::empty())
}

fn add_file(
    b: &mut tar::Builder<Vec<u8>>,
    path: &str,
    mode: u32,
    data: &[u8],
) -> std::io::Result<()> {
    let mut h = header(tar::EntryType::Regular, mode, data.len() as u64);
    b.append_data(&mut h, path, data)
}

/// The one layer: busybox, a symlink per applet, and the few files a container expects.
pub fn busybox_layer(busybox: &Path) -> Result<Vec<u8>> {
    let bin = std::fs::read(busybox).map_err(|source| Error::Busybox {
        path: busybox.to_path_buf(),
        source,
    })?;
    let build = || -> std::io::Result<Vec<u8>> {
        let mut b = tar::Builder::new(Vec::new());
        for (dir, mode) in [
            ("bin", 0o755),
            ("dev", 0o755),
            ("etc", 0o755),
            ("home", 0o755),
            ("proc", 0o555),
            ("root", 0o700),
            ("sys", 0o555),
            ("tmp", 0o1777),
            ("var", 0o755),
            ("www", 0o755),
        ] {
            add_dir(&mut b, dir, mode)?;
        }
        add_file(&mut b, "bin/busybox", 0o755, &bin)?;
        for applet in applets(busybox) {
            let mut h = header(tar::EntryType::Symlink, 0o777, 0);
            b.append_link(&mut h, format!("bin/{applet}"), "busybox")?;
        }
        add_file(
            &mut b,
            "etc/passwd",
            0o644,
            b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n",
        )?;
        add_file(&mut b, "etc/group", 0o644, b"root:x:0:\nnobody:x:65534:\n")?;
        // So `httpd -f -p 8080 -h /www` answers `GET /` out of the box.
        add_file(&mut b, "www/index.html", 0o644, b"tugboat busybox\n")?;
        b.into_inner()
    };
    build().map_err(Error::Archive)
}

/// An OCI image layout archive (what `ctr images import` reads) of the busybox image.
///
/// Its default command is `sleep 2147483647`: CRI runs the sandbox image's command as the
/// pod's pause process, and it must not exit.
pub fn busybox_archive(busybox: &Path, name: &str) -> Result<Vec<u8>> {
    let layer = busybox_layer(busybox)?;
    let diff_id = format!("sha256:{}", sha256_hex(&layer));
    let arch = host_arch();
    let config = serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["sleep", "2147483647"],
            "WorkingDir": "/",
        },
        "rootfs": { "type": "layers", "diff_ids": [diff_id] },
        "history": [{ "created_by": "tugboat: host busybox", "comment": busybox.display().to_string() }],
    });
    let config = serde_json::to_vec(&config).map_err(|e| Error::Archive(e.into()))?;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": descriptor(MEDIA_CONFIG, &config),
        "layers": [descriptor(MEDIA_LAYER, &layer)],
    });
    let manifest = serde_json::to_vec(&manifest).map_err(|e| Error::Archive(e.into()))?;
    let tag = name.rsplit_once(':').map_or("latest", |(_, t)| t);
    let mut manifest_desc = descriptor(MEDIA_MANIFEST, &manifest);
    manifest_desc["annotations"] = serde_json::json!({
        "io.containerd.image.name": name,
        "org.opencontainers.image.ref.name": tag,
    });
    manifest_desc["platform"] = serde_json::json!({ "architecture": arch, "os": "linux" });
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_INDEX,
        "manifests": [manifest_desc],
    });
    let index = serde_json::to_vec(&index).map_err(|e| Error::Archive(e.into()))?;

    let build = || -> std::io::Result<Vec<u8>> {
        let mut b = tar::Builder::new(Vec::new());
        add_file(
            &mut b,
            "oci-layout",
            0o644,
            br#"{"imageLayoutVersion":"1.0.0"}"#,
        )?;
        add_file(&mut b, "index.json", 0o644, &index)?;
        add_dir(&mut b, "blobs", 0o755)?;
        add_dir(&mut b, "blobs/sha256", 0o755)?;
        for blob in [&layer, &config, &manifest] {
            add_file(
                &mut b,
                &format!("blobs/sha256/{}", sha256_hex(blob)),
                0o644,
                blob,
            )?;
        }
        b.into_inner()
    };
    build().map_err(Error::Archive)
}

/// Finds `ctr`: next to `containerd` first, then in `PATH`.
pub fn find_ctr() -> Option<PathBuf> {
    crate::supervisor::find_in_path("ctr")
}

/// What to import.
pub enum Archive<'a> {
    /// A file on disk.
    File(&'a Path),
    /// An archive in memory, fed on stdin.
    Bytes(Vec<u8>),
}

/// Imports an OCI or docker archive into the `k8s.io` namespace of the containerd at
/// `socket` and unpacks it; returns the image names it brought in.
pub async fn import(socket: &Path, archive: Archive<'_>) -> Result<Vec<String>> {
    let ctr = find_ctr().ok_or(Error::CtrMissing)?;
    let mut cmd = Command::new(ctr);
    cmd.arg("--address")
        .arg(socket)
        .args(["--namespace", CRI_NAMESPACE, "images", "import"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let input = match archive {
        Archive::File(path) => {
            // Open it ourselves for a clear error instead of ctr's.
            std::fs::File::open(path).map_err(|source| Error::Open {
                path: path.to_path_buf(),
                source,
            })?;
            cmd.arg(path).stdin(Stdio::null());
            None
        }
        Archive::Bytes(bytes) => {
            cmd.arg("-").stdin(Stdio::piped());
            Some(bytes)
        }
    };
    let run = async {
        let mut child = cmd.spawn().map_err(|e| Error::Import(e.to_string()))?;
        if let (Some(bytes), Some(mut stdin)) = (input, child.stdin.take()) {
            stdin
                .write_all(&bytes)
                .await
                .map_err(|e| Error::Import(format!("writing to ctr: {e}")))?;
            drop(stdin);
        }
        child
            .wait_with_output()
            .await
            .map_err(|e| Error::Import(e.to_string()))
    };
    let out = tokio::time::timeout(IMPORT_TIMEOUT, run)
        .await
        .map_err(|_| Error::ImportTimeout(IMPORT_TIMEOUT))??;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(Error::Import(stderr.trim().to_string()));
    }
    let names = imported_names(&stdout);
    if names.is_empty() {
        return Err(Error::Import(
            "the archive names no image (no io.containerd.image.name or RepoTags)".to_string(),
        ));
    }
    tracing::info!(images = ?names, "imported images");
    Ok(names)
}

/// Image names from `ctr images import` output: `unpacking NAME (sha256:...)...done`.
fn imported_names(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|l| l.trim().strip_prefix("unpacking "))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(String::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::io::Read;

    use super::*;

    fn entries(archive: &[u8]) -> BTreeMap<String, (tar::EntryType, Vec<u8>, Option<String>)> {
        let mut out = BTreeMap::new();
        let mut a = tar::Archive::new(archive);
        for e in a.entries().expect("entries") {
            let mut e = e.expect("entry");
            let path = e.path().expect("path").display().to_string();
            let kind = e.header().entry_type();
            let link = e
                .link_name()
                .expect("link")
                .map(|l| l.display().to_string());
            let mut data = Vec::new();
            e.read_to_end(&mut data).expect("read");
            out.insert(path, (kind, data, link));
        }
        out
    }

    /// A stand-in for busybox: a script, so the test needs no busybox installed.
    fn fake_busybox(dir: &Path) -> PathBuf {
        let path = dir.join("busybox");
        std::fs::write(&path, "#!/bin/sh\necho sh\necho httpd\necho sleep\n").expect("write");
        let mut perm = std::fs::metadata(&path).expect("meta").permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
        std::fs::set_permissions(&path, perm).expect("chmod");
        path
    }

    #[test]
    fn layer_has_busybox_and_applet_links() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bb = fake_busybox(dir.path());
        let layer = entries(&busybox_layer(&bb).expect("layer"));
        let (kind, data, _) = &layer["bin/busybox"];
        assert_eq!(*kind, tar::EntryType::Regular);
        assert_eq!(data, &std::fs::read(&bb).expect("read"));
        for applet in ["sh", "httpd", "sleep"] {
            let (kind, _, link) = &layer[&format!("bin/{applet}")];
            assert_eq!(*kind, tar::EntryType::Symlink);
            assert_eq!(link.as_deref(), Some("busybox"));
        }
        assert_eq!(layer["tmp"].0, tar::EntryType::Directory);
        assert!(layer.contains_key("etc/passwd"));
    }

    #[test]
    fn archive_is_a_valid_oci_layout_and_deterministic() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bb = fake_busybox(dir.path());
        let bytes = busybox_archive(&bb, "docker.io/library/busybox:latest").expect("archive");
        assert_eq!(
            bytes,
            busybox_archive(&bb, "docker.io/library/busybox:latest").expect("again")
        );
        let files = entries(&bytes);
        let blob = |digest: &str| -> Vec<u8> {
            let hex = digest.strip_prefix("sha256:").expect("sha256");
            let data = files[&format!("blobs/sha256/{hex}")].1.clone();
            assert_eq!(sha256_hex(&data), hex, "blob digest matches content");
            data
        };
        let index: serde_json::Value = serde_json::from_slice(&files["index.json"].1).expect("ix");
        let m = &index["manifests"][0];
        assert_eq!(
            m["annotations"]["io.containerd.image.name"],
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            m["annotations"]["org.opencontainers.image.ref.name"],
            "latest"
        );
        let manifest: serde_json::Value =
            serde_json::from_slice(&blob(m["digest"].as_str().expect("d"))).expect("manifest");
        let config: serde_json::Value =
            serde_json::from_slice(&blob(manifest["config"]["digest"].as_str().expect("d")))
                .expect("config");
        let layer_digest = manifest["layers"][0]["digest"].as_str().expect("d");
        let layer = blob(layer_digest);
        assert_eq!(manifest["layers"][0]["size"], layer.len());
        // Uncompressed layer: its diff ID is its digest.
        assert_eq!(config["rootfs"]["diff_ids"][0], layer_digest);
        assert_eq!(config["architecture"], host_arch());
        assert_eq!(config["config"]["Cmd"][0], "sleep");
    }

    #[test]
    fn missing_busybox_is_a_clear_error() {
        let err = busybox_layer(Path::new("/nonexistent/busybox")).expect_err("no busybox");
        assert!(err.to_string().contains("apt-get install busybox-static"));
    }

    #[test]
    fn parses_ctr_import_output() {
        let out = "unpacking docker.io/library/busybox:latest (sha256:abc)...done\n\
                   unpacking docker.io/library/nginx:1 (sha256:def)...done\n";
        assert_eq!(
            imported_names(out),
            vec![
                "docker.io/library/busybox:latest",
                "docker.io/library/nginx:1"
            ]
        );
    }
}
