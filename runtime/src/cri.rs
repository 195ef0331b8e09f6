//! CRI v1 client (RuntimeService + ImageService) over a unix socket.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

/// The CRI v1 messages and clients, generated from the vendored `proto/api.proto`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("runtime.v1");
}

use v1::image_service_client::ImageServiceClient;
use v1::runtime_service_client::RuntimeServiceClient;

/// Replies can carry many containers or a chatty exec; tonic's 4 MiB default is too tight.
const MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// How long connecting to the socket may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Errors reaching CRI.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The socket could not be connected to.
    #[error("cannot connect to CRI at {socket}: {source}")]
    Connect {
        /// The socket.
        socket: PathBuf,
        /// Why.
        #[source]
        source: tonic::transport::Error,
    },
}

/// Result alias of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Both CRI services over one connection; cheap to clone.
#[derive(Debug, Clone)]
pub struct CriClient {
    /// RuntimeService: sandboxes, containers, exec, stats.
    pub runtime: RuntimeServiceClient<Channel>,
    /// ImageService: list, status, pull, remove.
    pub image: ImageServiceClient<Channel>,
    socket: PathBuf,
}

impl CriClient {
    /// Connects to the CRI socket at `socket` (a path, or `unix://` + path).
    ///
    /// The channel reconnects by itself if containerd restarts.
    pub async fn connect(socket: &Path) -> Result<Self> {
        let socket = strip_unix_scheme(socket);
        let path = socket.clone();
        // The URI is required by tonic but unused: the connector always dials the socket.
        let channel = Endpoint::from_static("http://[::]:0")
            .connect_timeout(CONNECT_TIMEOUT)
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move { UnixStream::connect(path).await.map(TokioIo::new) }
            }))
            .await
            .map_err(|source| Error::Connect {
                socket: socket.clone(),
                source,
            })?;
        Ok(Self {
            runtime: RuntimeServiceClient::new(channel.clone())
                .max_decoding_message_size(MAX_MESSAGE),
            image: ImageServiceClient::new(channel).max_decoding_message_size(MAX_MESSAGE),
            socket,
        })
    }

    /// The socket this client talks to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }
}

/// `unix:///run/x.sock` → `/run/x.sock`, as `--containerd-endpoint` may be given either way.
fn strip_unix_scheme(socket: &Path) -> PathBuf {
    let s = socket.to_string_lossy();
    match s.strip_prefix("unix://") {
        Some(rest) => PathBuf::from(rest),
        None => socket.to_path_buf(),
    }
}

/// Wraps a message in a request with a deadline.
pub(crate) fn request<T>(msg: T, timeout: Duration) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    req.set_timeout(timeout);
    req
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_may_carry_the_unix_scheme() {
        assert_eq!(
            strip_unix_scheme(Path::new("unix:///run/c.sock")),
            PathBuf::from("/run/c.sock")
        );
        assert_eq!(
            strip_unix_scheme(Path::new("/run/c.sock")),
            PathBuf::from("/run/c.sock")
        );
    }

    #[tokio::test]
    async fn connecting_to_a_missing_socket_fails_fast() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = tokio::time::timeout(
            Duration::from_secs(10),
            CriClient::connect(&dir.path().join("none.sock")),
        )
        .await
        .expect("bounded")
        .expect_err("no socket");
        assert!(err.to_string().contains("none.sock"));
    }
}
