//! Probes: the per-container state machine (initial delay, period, thresholds) and the three
//! ways of asking (exec through the runtime, HTTP GET, TCP connect).

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;
use tugboat_runtime::Runtime;

/// Which probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    /// Failure restarts the container.
    Liveness,
    /// Drives Ready; never restarts.
    Readiness,
    /// Gates the other two until it first succeeds; failure restarts.
    Startup,
}

impl ProbeKind {
    /// As in event messages: `Liveness`, `Readiness`, `Startup`.
    pub fn name(self) -> &'static str {
        match self {
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
            ProbeKind::Startup => "Startup",
        }
    }

    /// The probe of this kind in `container`'s spec.
    pub fn of(self, container: &Container) -> Option<&Probe> {
        match self {
            ProbeKind::Liveness => container.liveness_probe.as_ref(),
            ProbeKind::Readiness => container.readiness_probe.as_ref(),
            ProbeKind::Startup => container.startup_probe.as_ref(),
        }
    }
}

/// A probe's timings and thresholds, with the API's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeTiming {
    /// Wait after the container starts before the first probe.
    pub initial_delay: Duration,
    /// Between probes.
    pub period: Duration,
    /// For one probe.
    pub timeout: Duration,
    /// Consecutive successes to count as passing.
    pub success_threshold: u32,
    /// Consecutive failures to count as failing.
    pub failure_threshold: u32,
}

impl ProbeTiming {
    /// From a spec: defaults 0 s delay, 10 s period, 1 s timeout, thresholds 1 and 3.
    pub fn of(probe: &Probe) -> Self {
        let secs = |v: Option<i32>, default: u64| {
            Duration::from_secs(v.and_then(|s| u64::try_from(s).ok()).unwrap_or(default))
        };
        let count = |v: Option<i32>, default: u32| {
            v.and_then(|n| u32::try_from(n).ok())
                .filter(|n| *n > 0)
                .unwrap_or(default)
        };
        ProbeTiming {
            initial_delay: secs(probe.initial_delay_seconds, 0),
            period: secs(probe.period_seconds, 10).max(Duration::from_secs(1)),
            timeout: secs(probe.timeout_seconds, 1).max(Duration::from_secs(1)),
            success_threshold: count(probe.success_threshold, 1),
            failure_threshold: count(probe.failure_threshold, 3),
        }
    }
}

/// One probe of one container instance: when it runs next and what it currently says.
#[derive(Debug, Clone)]
pub struct ProbeState {
    timing: ProbeTiming,
    passing: bool,
    successes: u32,
    failures: u32,
    next_run: Instant,
}

impl ProbeState {
    /// A probe for a container that started at `started`. Until its first result, liveness
    /// counts as passing, readiness and startup as not.
    pub fn new(kind: ProbeKind, timing: ProbeTiming, started: Instant) -> Self {
        ProbeState {
            timing,
            passing: kind == ProbeKind::Liveness,
            successes: 0,
            failures: 0,
            next_run: started + timing.initial_delay,
        }
    }

    /// Whether it should run at `now`.
    pub fn due(&self, now: Instant) -> bool {
        now >= self.next_run
    }

    /// When it runs next.
    pub fn next_run(&self) -> Instant {
        self.next_run
    }

    /// What it currently says.
    pub fn passing(&self) -> bool {
        self.passing
    }

    /// Its timeout.
    pub fn timeout(&self) -> Duration {
        self.timing.timeout
    }

    /// Records one result at `now`; returns the new verdict when it flips.
    pub fn record(&mut self, ok: bool, now: Instant) -> Option<bool> {
        self.next_run = now + self.timing.period;
        if ok {
            self.failures = 0;
            self.successes = self.successes.saturating_add(1);
            if !self.passing && self.successes >= self.timing.success_threshold {
                self.passing = true;
                return Some(true);
            }
        } else {
            self.successes = 0;
            self.failures = self.failures.saturating_add(1);
            if self.passing && self.failures >= self.timing.failure_threshold {
                self.passing = false;
                return Some(false);
            }
            // A probe that never passed has failed once the threshold is reached too.
            if !self.passing && self.failures == self.timing.failure_threshold {
                return Some(false);
            }
        }
        None
    }

    /// Consecutive failures so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

/// How to ask, resolved against the pod: exec, HTTP GET or TCP connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeAction {
    /// Run a command in the container; exit 0 passes.
    Exec(Vec<String>),
    /// GET `path` on `host:port`; 200-399 passes.
    Http {
        /// Address (the pod IP unless the probe says otherwise).
        host: String,
        /// Port.
        port: u16,
        /// Path and query.
        path: String,
        /// Extra headers.
        headers: Vec<(String, String)>,
    },
    /// Connect to `host:port`.
    Tcp {
        /// Address.
        host: String,
        /// Port.
        port: u16,
    },
}

/// A named or numbered port of `container`.
fn port_number(port: &IntOrString, container: &Container) -> Option<u16> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).ok(),
        IntOrString::String(name) => container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .and_then(|p| u16::try_from(p.container_port).ok())
            .or_else(|| name.parse().ok()),
    }
}

/// What `probe` asks, with `pod_ip` as the default host; `Err` says why it cannot run.
pub fn action(probe: &Probe, container: &Container, pod_ip: &str) -> Result<ProbeAction, String> {
    if let Some(exec) = &probe.exec {
        return Ok(ProbeAction::Exec(exec.command.clone().unwrap_or_default()));
    }
    if let Some(http) = &probe.http_get {
        if http
            .scheme
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case("HTTPS"))
        {
            return Err("HTTPS probes are not supported yet".to_string());
        }
        let port = port_number(&http.port, container)
            .ok_or_else(|| format!("unknown port {:?}", http.port))?;
        let path = match http.path.as_deref() {
            Some(p) if p.starts_with('/') => p.to_string(),
            Some(p) => format!("/{p}"),
            None => "/".to_string(),
        };
        return Ok(ProbeAction::Http {
            host: http.host.clone().unwrap_or_else(|| pod_ip.to_string()),
            port,
            path,
            headers: http
                .http_headers
                .iter()
                .flatten()
                .map(|h| (h.name.clone(), h.value.clone()))
                .collect(),
        });
    }
    if let Some(tcp) = &probe.tcp_socket {
        let port = port_number(&tcp.port, container)
            .ok_or_else(|| format!("unknown port {:?}", tcp.port))?;
        return Ok(ProbeAction::Tcp {
            host: tcp.host.clone().unwrap_or_else(|| pod_ip.to_string()),
            port,
        });
    }
    Err("probe has no handler (gRPC probes are not supported yet)".to_string())
}

/// Runs `action` against container `container_id`; `Err` carries the failure message.
pub async fn run(
    action: &ProbeAction,
    runtime: &dyn Runtime,
    container_id: &str,
    timeout: Duration,
) -> Result<(), String> {
    // Simulated pods have fake IPs: every probe is answered by the runtime, never the network.
    let simulated_check;
    let action = match action {
        ProbeAction::Http { .. } | ProbeAction::Tcp { .. } if runtime.simulated() => {
            simulated_check = ProbeAction::Exec(vec!["tugboat-sim-probe".into()]);
            &simulated_check
        }
        other => other,
    };
    run_action(action, runtime, container_id, timeout).await
}

/// Runs `action` as it says: exec through the runtime, HTTP and TCP over the network.
async fn run_action(
    action: &ProbeAction,
    runtime: &dyn Runtime,
    container_id: &str,
    timeout: Duration,
) -> Result<(), String> {
    match action {
        ProbeAction::Exec(cmd) => {
            let result = tokio::time::timeout(
                timeout + Duration::from_secs(1),
                runtime.exec_sync(container_id, cmd, timeout),
            )
            .await
            .map_err(|_| format!("command timed out after {timeout:?}"))?
            .map_err(|e| e.to_string())?;
            if result.exit_code == 0 {
                Ok(())
            } else {
                let out = String::from_utf8_lossy(&result.stdout);
                Err(format!(
                    "command {cmd:?} exited with {}: {}",
                    result.exit_code,
                    out.trim()
                ))
            }
        }
        ProbeAction::Http {
            host,
            port,
            path,
            headers,
        } => tokio::time::timeout(timeout, http_get(host, *port, path, headers))
            .await
            .map_err(|_| format!("Get \"http://{host}:{port}{path}\": timed out"))?,
        ProbeAction::Tcp { host, port } => tokio::time::timeout(
            timeout,
            tokio::net::TcpStream::connect((host.as_str(), *port)),
        )
        .await
        .map_err(|_| format!("dial tcp {host}:{port}: i/o timeout"))?
        .map(|_| ())
        .map_err(|e| format!("dial tcp {host}:{port}: {e}")),
    }
}

async fn http_get(
    host: &str,
    port: u16,
    path: &str,
    headers: &[(String, String)],
) -> Result<(), String> {
    let url = format!("http://{host}:{port}{path}");
    let mut stream = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("Get \"{url}\": {e}"))?;
    let mut request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: tugboat-probe/1.0\r\nAccept: */*\r\nConnection: close\r\n"
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("Get \"{url}\": {e}"))?;
    // The status line is all that matters; read until its end (bounded).
    let mut head = Vec::with_capacity(256);
    let mut buf = [0u8; 256];
    while !head.contains(&b'\n') && head.len() < 4096 {
        let n = stream
            .read(&mut buf)
            .await
            .map_err(|e| format!("Get \"{url}\": {e}"))?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let code: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("Get \"{url}\": malformed HTTP response"))?;
    if (200..400).contains(&code) {
        Ok(())
    } else {
        Err(format!("HTTP probe failed with statuscode: {code}"))
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{ContainerPort, HTTPGetAction};

    use super::*;

    fn timing(success: u32, failure: u32) -> ProbeTiming {
        ProbeTiming {
            initial_delay: Duration::from_secs(5),
            period: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
            success_threshold: success,
            failure_threshold: failure,
        }
    }

    #[test]
    fn liveness_fails_after_the_failure_threshold_in_a_row() {
        let start = Instant::now();
        let mut p = ProbeState::new(ProbeKind::Liveness, timing(1, 3), start);
        assert!(p.passing(), "liveness passes until it fails");
        assert!(!p.due(start + Duration::from_secs(4)), "initial delay");
        assert!(p.due(start + Duration::from_secs(5)));
        let t = start + Duration::from_secs(5);
        assert_eq!(p.record(false, t), None);
        assert_eq!(p.record(false, t), None);
        assert_eq!(p.record(true, t), None, "a success resets the count");
        assert_eq!(p.record(false, t), None);
        assert_eq!(p.record(false, t), None);
        assert_eq!(p.record(false, t), Some(false));
        assert!(!p.passing());
        assert_eq!(p.next_run(), t + Duration::from_secs(2));
    }

    #[test]
    fn readiness_needs_the_success_threshold() {
        let start = Instant::now();
        let mut p = ProbeState::new(ProbeKind::Readiness, timing(2, 1), start);
        assert!(!p.passing());
        assert_eq!(p.record(true, start), None);
        assert_eq!(p.record(true, start), Some(true));
        assert_eq!(p.record(false, start), Some(false));
    }

    #[test]
    fn startup_that_never_passes_reports_failure_once() {
        let start = Instant::now();
        let mut p = ProbeState::new(ProbeKind::Startup, timing(1, 2), start);
        assert_eq!(p.record(false, start), None);
        assert_eq!(p.record(false, start), Some(false));
        assert_eq!(p.record(false, start), None);
    }

    #[test]
    fn http_probes_resolve_named_ports_and_default_to_the_pod_ip() {
        let container = Container {
            name: "web".into(),
            ports: Some(vec![ContainerPort {
                name: Some("http".into()),
                container_port: 8080,
                ..Default::default()
            }]),
            ..Default::default()
        };
        let probe = Probe {
            http_get: Some(HTTPGetAction {
                path: Some("healthz".into()),
                port: IntOrString::String("http".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            action(&probe, &container, "10.1.0.5"),
            Ok(ProbeAction::Http {
                host: "10.1.0.5".into(),
                port: 8080,
                path: "/healthz".into(),
                headers: Vec::new(),
            })
        );
        assert!(action(&Probe::default(), &container, "x").is_err());
    }

    #[tokio::test]
    async fn http_and_tcp_probes_talk_to_a_local_server() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = async {
            for status in ["200 OK", "500 Internal Server Error"] {
                let (mut conn, _) = listener.accept().await.expect("accept");
                let mut buf = [0u8; 1024];
                let _ = conn.read(&mut buf).await;
                let reply = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n");
                conn.write_all(reply.as_bytes()).await.expect("write");
            }
        };
        let rt = tugboat_runtime::SimRuntime::new("n", tugboat_runtime::SimNetwork::new());
        let get = ProbeAction::Http {
            host: "127.0.0.1".into(),
            port,
            path: "/".into(),
            headers: vec![("X-Probe".into(), "1".into())],
        };
        let client = async {
            let ok = run_action(&get, &rt, "c", Duration::from_secs(5)).await;
            let bad = run_action(&get, &rt, "c", Duration::from_secs(5)).await;
            let tcp = run_action(
                &ProbeAction::Tcp {
                    host: "127.0.0.1".into(),
                    port,
                },
                &rt,
                "c",
                Duration::from_secs(5),
            )
            .await;
            (ok, bad, tcp)
        };
        let ((ok, bad, tcp), ()) = tokio::time::timeout(Duration::from_secs(10), async {
            tokio::join!(client, server)
        })
        .await
        .expect("bounded");
        assert_eq!(ok, Ok(()));
        assert_eq!(
            bad,
            Err("HTTP probe failed with statuscode: 500".to_string())
        );
        assert_eq!(tcp, Ok(()));
    }

    #[tokio::test]
    async fn simulated_pods_are_probed_without_the_network() {
        let rt = tugboat_runtime::SimRuntime::new("n", tugboat_runtime::SimNetwork::new());
        // A fake IP nobody may dial: the runtime answers (here: no such container).
        let get = ProbeAction::Http {
            host: "198.18.0.7".into(),
            port: 8080,
            path: "/health".into(),
            headers: Vec::new(),
        };
        let started = std::time::Instant::now();
        let answer = run(&get, &rt, "missing", Duration::from_secs(5)).await;
        assert!(
            answer.as_ref().is_err_and(|e| e.contains("missing")),
            "{answer:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
