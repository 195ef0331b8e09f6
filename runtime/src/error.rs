//! The error every `Runtime` method returns.

/// A runtime call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The sandbox, container or image does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The request was invalid (bad IDs, missing metadata).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// A CRI call failed.
    #[error("CRI {op} failed: {status}")]
    Rpc {
        /// The CRI method.
        op: &'static str,
        /// What the runtime said.
        #[source]
        status: tonic::Status,
    },
    /// CRI could not be reached.
    #[error(transparent)]
    Connect(#[from] crate::cri::Error),
    /// The private containerd could not be started or stopped.
    #[error(transparent)]
    Supervisor(#[from] crate::supervisor::Error),
    /// An image could not be built or imported.
    #[error(transparent)]
    Image(#[from] crate::image::Error),
    /// The pod network could not be set up or removed.
    #[error(transparent)]
    Network(#[from] crate::cni::Error),
    /// A log could not be read.
    #[error(transparent)]
    Logs(#[from] crate::logs::Error),
    /// A file or directory could not be made or removed.
    #[error("{path}: {source}")]
    Fs {
        /// What.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// Maps a CRI status: `NotFound` becomes [`Error::NotFound`], so callers can match on it.
    pub(crate) fn rpc(op: &'static str, what: &str, status: tonic::Status) -> Self {
        if status.code() == tonic::Code::NotFound {
            Error::NotFound(what.to_string())
        } else {
            Error::Rpc { op, status }
        }
    }

    /// Whether the thing asked about does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound(_))
    }
}

/// Result alias of the crate's runtime API.
pub type Result<T, E = Error> = std::result::Result<T, E>;
