//! The proxy's effects on the host: `iptables-restore --noflush` in one batch, the jumps from
//! the built-in chains, `route_localnet`, the `tug-svc` dummy interface holding the service
//! CIDR route, and their removal. Every command can run inside a named network namespace
//! (`ip netns exec`), which is how the tests use it.

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::rules::{CHAIN_PREFIX, JUMPS};

/// The dummy interface the service CIDR is routed to.
pub const DUMMY_INTERFACE: &str = "tug-svc";
/// The service CIDR `tug up` uses (the fallback route [`NetHost::cleanup`] removes).
pub const DEFAULT_SERVICE_CIDR: &str = "10.96.0.0/16";
/// Upper bound of one command.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a host command failed.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The command could not be started or waited for.
    #[error("{command}: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The command ran and failed.
    #[error("{command} failed: {stderr}")]
    Failed {
        /// The command line.
        command: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// The command did not finish in time (it is killed).
    #[error("{0} timed out")]
    Timeout(String),
}

/// Where the proxy's commands run: the host, or a named network namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetHost {
    /// `ip netns` name, or `None` for the agent's own namespace.
    pub netns: Option<String>,
}

impl NetHost {
    fn command(&self, program: &str, args: &[&str]) -> (Command, String) {
        let line = format!("{program} {}", args.join(" "));
        let mut command = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns.as_str(), program]);
                c
            }
            None => Command::new(program),
        };
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        (command, line)
    }

    /// Runs a command with optional stdin; returns its stdout.
    pub async fn run(
        &self,
        program: &str,
        args: &[&str],
        input: Option<&str>,
    ) -> Result<String, HostError> {
        let (mut command, line) = self.command(program, args);
        if input.is_some() {
            command.stdin(Stdio::piped());
        }
        let spawn_error = |source| HostError::Spawn {
            command: line.clone(),
            source,
        };
        let mut child = command.spawn().map_err(spawn_error)?;
        if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
            stdin
                .write_all(input.as_bytes())
                .await
                .map_err(spawn_error)?;
            drop(stdin);
        }
        let output = tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output())
            .await
            .map_err(|_| HostError::Timeout(line.clone()))?
            .map_err(spawn_error)?;
        if !output.status.success() {
            return Err(HostError::Failed {
                command: line,
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Applies `iptables-restore` input without touching anything it does not name.
    pub async fn restore(&self, text: &str) -> Result<(), HostError> {
        self.run("iptables-restore", &["-w", "5", "--noflush"], Some(text))
            .await
            .map(|_| ())
    }

    /// Our chains present on the host now, as `(table, chain)`.
    pub async fn existing_chains(&self) -> Result<BTreeSet<(String, String)>, HostError> {
        let mut chains = BTreeSet::new();
        for table in ["nat", "filter"] {
            let saved = self.run("iptables-save", &["-t", table], None).await?;
            chains.extend(parse_chains(table, &saved));
        }
        Ok(chains)
    }

    /// Inserts the jumps from the built-in chains into ours, once each.
    pub async fn ensure_jumps(&self) -> Result<(), HostError> {
        for &(table, builtin, chain, matches) in JUMPS {
            let mut rule: Vec<&str> = matches.split_whitespace().collect();
            rule.extend(["-j", chain]);
            let mut check = vec!["-w", "5", "-t", table, "-C", builtin];
            check.extend(&rule);
            if self.run("iptables", &check, None).await.is_ok() {
                continue;
            }
            let mut insert = vec!["-w", "5", "-t", table, "-I", builtin, "1"];
            insert.extend(&rule);
            self.run("iptables", &insert, None).await?;
        }
        Ok(())
    }

    /// Lets DNAT to pods work for packets to 127.0.0.1 (NodePorts on localhost).
    pub async fn enable_route_localnet(&self) -> Result<(), HostError> {
        self.run(
            "sysctl",
            &["-q", "-w", "net.ipv4.conf.all.route_localnet=1"],
            None,
        )
        .await
        .map(|_| ())
    }

    /// Creates the `tug-svc` dummy interface (if missing) and routes `service_cidr` to it, so
    /// a ClusterIP without rules is dropped here instead of leaving through the default route.
    pub async fn ensure_service_route(&self, service_cidr: &str) -> Result<(), HostError> {
        let exists = self
            .run("ip", &["link", "show", DUMMY_INTERFACE], None)
            .await
            .is_ok();
        let created = exists
            || self
                .run(
                    "ip",
                    &["link", "add", DUMMY_INTERFACE, "type", "dummy"],
                    None,
                )
                .await
                .is_ok()
            // The cluster DNS may have made it at the same moment.
            || self
                .run("ip", &["link", "show", DUMMY_INTERFACE], None)
                .await
                .is_ok();
        if !created {
            // No dummy interfaces in this kernel: make the CIDR local instead, so it still
            // never leaves the machine (an unknown ClusterIP gets a reset from lo).
            tracing::warn!("no dummy interface support; routing the service CIDR to lo");
            return self
                .run(
                    "ip",
                    &[
                        "route",
                        "replace",
                        "local",
                        service_cidr,
                        "dev",
                        "lo",
                        "table",
                        "local",
                    ],
                    None,
                )
                .await
                .map(|_| ());
        }
        self.run("ip", &["link", "set", DUMMY_INTERFACE, "up"], None)
            .await?;
        self.run(
            "ip",
            &["route", "replace", service_cidr, "dev", DUMMY_INTERFACE],
            None,
        )
        .await
        .map(|_| ())
    }

    /// Removes every jump, chain and interface the proxy made. Best effort: it goes on after
    /// a failure and returns the first one.
    pub async fn cleanup(&self) -> Result<(), HostError> {
        let mut first_error = None;
        for &(table, builtin, chain, matches) in JUMPS {
            let mut delete = vec!["-w", "5", "-t", table, "-D", builtin];
            delete.extend(matches.split_whitespace());
            delete.extend(["-j", chain]);
            // A jump inserted twice by hand is removed twice; bounded.
            for _ in 0..8 {
                if self.run("iptables", &delete, None).await.is_err() {
                    break;
                }
            }
        }
        match self.existing_chains().await {
            Ok(chains) if !chains.is_empty() => {
                if let Err(error) = self.restore(&delete_text(&chains)).await {
                    first_error.get_or_insert(error);
                }
            }
            Ok(_) => {}
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
        if self
            .run("ip", &["link", "show", DUMMY_INTERFACE], None)
            .await
            .is_ok()
            && let Err(error) = self
                .run("ip", &["link", "del", DUMMY_INTERFACE], None)
                .await
        {
            first_error.get_or_insert(error);
        }
        // The fallback route of kernels without dummy interfaces (absent: nothing to do).
        let _ = self
            .run(
                "ip",
                &[
                    "route",
                    "del",
                    "local",
                    DEFAULT_SERVICE_CIDR,
                    "dev",
                    "lo",
                    "table",
                    "local",
                ],
                None,
            )
            .await;
        first_error.map_or(Ok(()), Err)
    }
}

/// Our chains declared in `iptables-save` output of `table`.
pub fn parse_chains(table: &str, saved: &str) -> BTreeSet<(String, String)> {
    saved
        .lines()
        .filter_map(|line| line.strip_prefix(':'))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|chain| chain.starts_with(CHAIN_PREFIX))
        .map(|chain| (table.to_owned(), chain.to_owned()))
        .collect()
}

/// Restore input that flushes then deletes `chains`.
pub fn delete_text(chains: &BTreeSet<(String, String)>) -> String {
    let mut text = String::new();
    for table in ["nat", "filter"] {
        let names: Vec<&String> = chains
            .iter()
            .filter(|(t, _)| t == table)
            .map(|(_, c)| c)
            .collect();
        if names.is_empty() {
            continue;
        }
        text.push_str(&format!("*{table}\n"));
        for name in &names {
            text.push_str(&format!(":{name} - [0:0]\n"));
        }
        for name in &names {
            text.push_str(&format!("-X {name}\n"));
        }
        text.push_str("COMMIT\n");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_our_chains_and_deletes_them() {
        let saved = "*nat\n:PREROUTING ACCEPT [0:0]\n:TUGBOAT-SERVICES - [0:0]\n:TUGBOAT-SVC-AB - [0:0]\n:KUBE-X - [0:0]\n-A PREROUTING -j TUGBOAT-SERVICES\nCOMMIT\n";
        let chains = parse_chains("nat", saved);
        assert_eq!(chains.len(), 2);
        let text = delete_text(&chains);
        assert_eq!(
            text,
            "*nat\n:TUGBOAT-SERVICES - [0:0]\n:TUGBOAT-SVC-AB - [0:0]\n-X TUGBOAT-SERVICES\n-X TUGBOAT-SVC-AB\nCOMMIT\n"
        );
    }
}
