//! `make up` until the API server lands: opens the embedded store in `./data/store`, writes a
//! few objects under Kubernetes-style keys, lists them, and shows a watch from the past.

#![allow(clippy::print_stdout)]

use bytes::Bytes;
use futures::StreamExt;
use tugboat_store::embedded::{EmbeddedConfig, EmbeddedStore};
use tugboat_store::{ListOptions, Store};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = std::env::var("TUGBOAT_DATA_DIR").unwrap_or_else(|_| "data".to_string());
    let store = EmbeddedStore::open(EmbeddedConfig::new(format!("{dir}/store")))?;
    let start = store.current_revision().await?;
    println!("embedded store at {dir}/store, revision {start}");

    for name in ["web-1", "web-2", "web-3"] {
        let key = format!("/registry/pods/default/{name}");
        let value = Bytes::from(format!(
            r#"{{"kind":"Pod","metadata":{{"name":"{name}"}}}}"#
        ));
        let written = match store.get(&key).await? {
            Some(existing) => store.update(&key, value, existing.mod_revision).await?,
            None => store.create(&key, value).await?,
        };
        println!("wrote {key} at revision {written}");
    }

    let listed = store
        .list("/registry/pods/default/", ListOptions::default())
        .await?;
    println!("list at revision {}:", listed.revision);
    for kv in &listed.items {
        println!("  {} (mod_revision {})", kv.key, kv.mod_revision);
    }

    let mut watch = store.watch("/registry/pods/", start).await?;
    println!("watch from revision {start}:");
    for _ in 0..3 {
        match tokio::time::timeout(std::time::Duration::from_secs(2), watch.next()).await {
            Ok(Some(event)) => {
                let event = event?;
                println!(
                    "  {:?} {} at {}",
                    event.kind, event.kv.key, event.kv.mod_revision
                );
            }
            _ => break,
        }
    }
    println!("the API server, scheduler and node agent are coming next: see README.md");
    Ok(())
}
