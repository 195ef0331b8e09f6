//! The agent's errors.

/// Why the agent, or one of its steps, failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API server call failed.
    #[error("API {action}: {source}")]
    Api {
        /// What the agent was doing.
        action: String,
        /// What the client said.
        #[source]
        source: Box<kube::Error>,
    },
    /// A container runtime call failed.
    #[error("runtime {action}: {source}")]
    Runtime {
        /// What the agent was doing.
        action: String,
        /// What the runtime said.
        #[source]
        source: tugboat_runtime::Error,
    },
    /// A pod volume could not be prepared on disk.
    #[error("volume {path}: {source}")]
    Volume {
        /// The file or directory.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The pod spec asks for something the agent cannot do.
    #[error("{0}")]
    Spec(String),
    /// A volume cannot be mounted yet (its claim is not bound): the pod waits.
    #[error("{0}")]
    VolumeNotReady(String),
}

impl Error {
    /// An API error with what was being done.
    pub fn api(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Self {
        let action = action.into();
        move |source| Error::Api {
            action,
            source: Box::new(source),
        }
    }

    /// A runtime error with what was being done.
    pub fn runtime(action: impl Into<String>) -> impl FnOnce(tugboat_runtime::Error) -> Self {
        let action = action.into();
        move |source| Error::Runtime { action, source }
    }
}

/// Result alias of the agent.
pub type Result<T, E = Error> = std::result::Result<T, E>;
