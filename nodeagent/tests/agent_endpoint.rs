//! The agent's HTTPS endpoint (logs, exec, port-forward) over real TLS with the cluster PKI
//! and a simulated runtime: who may call it, and the Status errors it answers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt as _;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tugboat_apiserver::tls::{self, Pki};
use tugboat_nodeagent::labels;
use tugboat_nodeagent::server::{self, Nodes, TlsMaterial};
use tugboat_runtime::cri::v1;
use tugboat_runtime::{Runtime, SimNetwork, SimRuntime};

const NODE: &str = "node-a";
const TIMEOUT: Duration = Duration::from_secs(10);

struct Endpoint {
    addr: SocketAddr,
    pki: Pki,
    runtime: Arc<SimRuntime>,
    shutdown: CancellationToken,
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn start() -> Endpoint {
    let hosts = vec!["127.0.0.1".to_owned()];
    let pki = tls::generate(&hosts).expect("pki");
    let (cert_pem, key_pem) = pki.sign_server("agent", &hosts).expect("agent cert");
    let tls = TlsMaterial {
        cert_pem,
        key_pem,
        ca_pem: pki.ca_pem.clone(),
    }
    .server_config()
    .expect("server config");
    let runtime = Arc::new(SimRuntime::new(NODE, SimNetwork::new()));
    let dynamic: Arc<dyn Runtime> = runtime.clone();
    let listener = server::bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let shutdown = CancellationToken::new();
    tokio::spawn(server::serve(
        listener,
        tls,
        Nodes::new([(NODE.to_owned(), dynamic)]),
        shutdown.clone(),
    ));
    Endpoint {
        addr,
        pki,
        runtime,
        shutdown,
    }
}

/// A running container of pod `default/<pod>` named `main`, labelled as the agent does.
async fn container(runtime: &SimRuntime, pod: &str) -> String {
    let mut pod_labels = labels::for_pod("default", pod, &format!("{pod}-uid"));
    let sandbox = v1::PodSandboxConfig {
        metadata: Some(v1::PodSandboxMetadata {
            name: pod.into(),
            namespace: "default".into(),
            uid: format!("{pod}-uid"),
            attempt: 0,
        }),
        labels: pod_labels.clone().into_iter().collect(),
        ..Default::default()
    };
    let sandbox_id = runtime.run_sandbox(&sandbox).await.expect("sandbox");
    pod_labels.insert(labels::CONTAINER_NAME.into(), "main".into());
    let config = v1::ContainerConfig {
        metadata: Some(v1::ContainerMetadata {
            name: "main".into(),
            attempt: 0,
        }),
        image: Some(v1::ImageSpec {
            image: "busybox".into(),
            ..Default::default()
        }),
        labels: pod_labels.into_iter().collect(),
        ..Default::default()
    };
    let id = runtime
        .create_container(&sandbox_id, &config, &sandbox)
        .await
        .expect("create");
    runtime.start_container(&id).await.expect("start");
    id
}

/// One GET over TLS with `client`; the status and body, or the error text.
async fn get(
    addr: SocketAddr,
    client: Arc<rustls::ClientConfig>,
    path: &str,
) -> Result<(u16, String), String> {
    let attempt = async {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
        let tls = tokio_rustls::TlsConnector::from(client)
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let request = hyper::Request::get(path)
            .header("host", addr.to_string())
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let code = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((code, String::from_utf8_lossy(&body).into_owned()))
    };
    tokio::time::timeout(TIMEOUT, attempt)
        .await
        .map_err(|_| "timed out".to_owned())?
}

/// A TLS client that trusts the CA and presents `identity` (certificate and key PEM), if any.
fn client_with(pki: &Pki, identity: Option<(String, String)>) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pki.ca_pem.as_bytes()) {
        roots.add(cert.expect("ca")).expect("ca");
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let certs = rustls_pemfile::certs(&mut cert.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .expect("cert");
            let key = rustls_pemfile::private_key(&mut key.as_bytes())
                .expect("key")
                .expect("key");
            builder.with_client_auth_cert(certs, key).expect("auth")
        }
    };
    Arc::new(config)
}

fn status(body: &str) -> Value {
    let status: Value = serde_json::from_str(body).expect("a Status body");
    assert_eq!(status["kind"], "Status", "{body}");
    status
}

#[tokio::test]
async fn only_the_api_servers_client_certificate_gets_in() {
    let endpoint = start().await;
    container(&endpoint.runtime, "web").await;
    let path = "/containerLogs/default/web/main";

    let api_server = endpoint.pki.agent_client_config().expect("client config");
    let (code, body) = get(endpoint.addr, api_server, path)
        .await
        .expect("the API server's certificate is accepted");
    assert_eq!(code, 200, "{body}");

    let anonymous = client_with(&endpoint.pki, None);
    let refused = get(endpoint.addr, anonymous, path).await;
    assert!(refused.is_err(), "no client certificate: {refused:?}");

    // Another agent's certificate is signed by the same CA but is for serving only.
    let agent = endpoint
        .pki
        .sign_server("other-agent", &["127.0.0.1".to_owned()])
        .expect("cert");
    let refused = get(endpoint.addr, client_with(&endpoint.pki, Some(agent)), path).await;
    assert!(refused.is_err(), "a server-only certificate: {refused:?}");

    // A client certificate from another CA.
    let other = tls::generate(&["127.0.0.1".to_owned()]).expect("pki");
    let foreign = other.sign_client("intruder").expect("cert");
    let refused = get(
        endpoint.addr,
        client_with(&endpoint.pki, Some(foreign)),
        path,
    )
    .await;
    assert!(refused.is_err(), "a certificate of another CA: {refused:?}");
}

#[tokio::test]
async fn failures_are_statuses() {
    let endpoint = start().await;
    container(&endpoint.runtime, "web").await;
    let client = endpoint.pki.agent_client_config().expect("client config");

    let (code, body) = get(
        endpoint.addr,
        client.clone(),
        "/containerLogs/default/ghost/main",
    )
    .await
    .expect("answer");
    assert_eq!(code, 400);
    assert!(
        status(&body)["message"]
            .as_str()
            .is_some_and(|m| m.contains("waiting to start")),
        "{body}"
    );

    let (code, body) = get(
        endpoint.addr,
        client.clone(),
        "/containerLogs/default/web/main?previous=true",
    )
    .await
    .expect("answer");
    assert_eq!(code, 400);
    assert!(
        status(&body)["message"]
            .as_str()
            .is_some_and(|m| m.contains("previous terminated container")),
        "{body}"
    );

    let (code, body) = get(
        endpoint.addr,
        client.clone(),
        "/exec/default/web/main?command=true&stdout=true",
    )
    .await
    .expect("answer");
    assert_eq!(code, 400, "simulated containers cannot exec: {body}");
    assert_eq!(status(&body)["reason"], "BadRequest");

    let (code, body) = get(
        endpoint.addr,
        client.clone(),
        "/exec/default/web/main?stdout=true",
    )
    .await
    .expect("answer");
    assert_eq!(code, 400, "no command: {body}");

    let (code, body) = get(
        endpoint.addr,
        client.clone(),
        "/containerLogs/default/web/main?node=elsewhere",
    )
    .await
    .expect("answer");
    assert_eq!(code, 404, "a node this endpoint does not serve: {body}");

    let (code, body) = get(endpoint.addr, client, "/portForward/default/ghost")
        .await
        .expect("answer");
    assert_eq!(code, 400, "no sandbox: {body}");
}
