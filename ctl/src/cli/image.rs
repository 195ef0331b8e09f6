//! `tug image import FILE` / `tug image ls`: local images in the containerd of a `tug up` data
//! dir (its private one, adopted if running, started for the command if not), or behind
//! `--containerd-endpoint`. Images land in containerd's `k8s.io` namespace, the one CRI sees,
//! so pods use them with `imagePullPolicy: Never` or `IfNotPresent`.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use tugboat_runtime::{ContainerdOptions, ContainerdRuntime, ImageInfo, Runtime as _};

/// `tug image ...`.
#[derive(Subcommand, Debug)]
pub enum ImageCommand {
    /// Import an OCI or docker image archive (`docker save`, `ctr images export`, an OCI
    /// layout tar) for pods to use.
    Import {
        /// The archive.
        file: PathBuf,
        #[command(flatten)]
        runtime: RuntimeArgs,
    },
    /// List the local images pods can use.
    #[command(alias = "list")]
    Ls {
        #[command(flatten)]
        runtime: RuntimeArgs,
    },
}

/// Which containerd: the one of `tug up`'s data dir, or an existing CRI socket.
#[derive(Args, Debug, Clone)]
pub struct RuntimeArgs {
    /// The data dir `tug up` uses (default as `tug up`'s).
    #[arg(long, env = "TUG_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// An existing containerd socket instead of the data dir's private containerd.
    #[arg(long, env = "TUG_CONTAINERD_ENDPOINT")]
    pub containerd_endpoint: Option<PathBuf>,
}

impl RuntimeArgs {
    async fn connect(&self) -> anyhow::Result<ContainerdRuntime> {
        let data_dir = self
            .data_dir
            .clone()
            .unwrap_or_else(crate::components::default_data_dir);
        let mut options = ContainerdOptions::new(&data_dir);
        options.endpoint = self.containerd_endpoint.clone();
        ContainerdRuntime::start(&options)
            .await
            .with_context(|| format!("cannot reach the containerd of {}", data_dir.display()))
    }
}

/// Run one `tug image` command.
pub async fn run(command: ImageCommand) -> anyhow::Result<()> {
    match command {
        ImageCommand::Import { file, runtime } => {
            let runtime = runtime.connect().await?;
            let result = runtime.import_image(&file).await;
            runtime.close().await;
            for name in result? {
                println!("imported {name}");
            }
            Ok(())
        }
        ImageCommand::Ls { runtime } => {
            let runtime = runtime.connect().await?;
            let result = runtime.list_images().await;
            runtime.close().await;
            print!("{}", image_table(&result?));
            Ok(())
        }
    }
}

/// `crictl images`' table: one row per name, sorted.
fn image_table(images: &[ImageInfo]) -> String {
    let mut rows: Vec<[String; 4]> = Vec::new();
    for image in images {
        let id = image.id.trim_start_matches("sha256:");
        let short_id = id.get(..13).unwrap_or(id).to_owned();
        let size = human_size(image.size);
        if image.repo_tags.is_empty() {
            let repo = image
                .repo_digests
                .first()
                .and_then(|d| d.split_once('@'))
                .map_or("<none>", |(repo, _)| repo);
            rows.push([repo.to_owned(), "<none>".into(), short_id.clone(), size]);
            continue;
        }
        for tag in &image.repo_tags {
            let (repo, tag) = split_tag(tag);
            rows.push([
                repo.to_owned(),
                tag.to_owned(),
                short_id.clone(),
                size.clone(),
            ]);
        }
    }
    rows.sort();
    let header = [
        "IMAGE".to_owned(),
        "TAG".into(),
        "IMAGE ID".into(),
        "SIZE".into(),
    ];
    let mut widths = [0usize; 4];
    for row in std::iter::once(&header).chain(&rows) {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(line.join("   ").trim_end());
        out.push('\n');
    }
    out
}

/// `registry/repo:tag` into repo and tag (a port's colon is not a tag's).
fn split_tag(name: &str) -> (&str, &str) {
    match name.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (name, "<none>"),
    }
}

/// Sizes as crictl prints them: decimal units, three significant digits (Go's `%.3g`).
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    #[expect(clippy::cast_precision_loss, reason = "a size for people to read")]
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    let decimals = if value >= 100.0 {
        0
    } else if value >= 10.0 {
        1
    } else {
        2
    };
    let mut number = format!("{value:.decimals$}");
    if number.contains('.') {
        number = number
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_owned();
    }
    format!("{number}{}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_as_crictl_lists_them() {
        let images = [
            ImageInfo {
                id: "sha256:0123456789abcdef0123".into(),
                repo_tags: vec![
                    "docker.io/library/busybox:latest".into(),
                    "localhost:5000/tools:1.0".into(),
                ],
                repo_digests: vec![],
                size: 1_234_567,
            },
            ImageInfo {
                id: "sha256:fedcba".into(),
                repo_tags: vec![],
                repo_digests: vec!["example.org/app@sha256:fedcba".into()],
                size: 999,
            },
        ];
        assert_eq!(
            image_table(&images),
            "\
IMAGE                       TAG      IMAGE ID        SIZE
docker.io/library/busybox   latest   0123456789abc   1.23MB
example.org/app             <none>   fedcba          999B
localhost:5000/tools        1.0      0123456789abc   1.23MB
"
        );
        assert_eq!(
            split_tag("localhost:5000/tools"),
            ("localhost:5000/tools", "<none>")
        );
    }
}
