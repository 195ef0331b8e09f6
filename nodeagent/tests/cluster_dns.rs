//! The cluster DNS on a real UDP and TCP socket on 127.0.0.1, answering from an in-process
//! API server: a Service's name gives its ClusterIP, a headless Service its ready endpoints,
//! a selectorless Service's hand-written Endpoints are found, named ports give SRV records,
//! unknown cluster names are NXDOMAIN, a change shows up at once, and other names are relayed
//! to a fake upstream resolver on 127.0.0.1 (no query leaves the machine).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio_util::sync::CancellationToken;
use tugboat_apiserver::{ApiServerConfig, StoreConfig};
use tugboat_nodeagent::dns::{self, DnsConfig};

const WAIT: Duration = Duration::from_secs(20);

async fn udp_query(server: SocketAddr, name: &str, qtype: RecordType) -> Message {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut query = Message::query();
    query.metadata.recursion_desired = true;
    query.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    socket
        .send_to(&query.to_vec().unwrap(), server)
        .await
        .unwrap();
    let mut buffer = vec![0u8; 4096];
    let (length, _) = tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut buffer))
        .await
        .expect("an answer in time")
        .unwrap();
    let answer = Message::from_vec(&buffer[..length]).unwrap();
    assert_eq!(answer.metadata.id, query.metadata.id);
    answer
}

async fn tcp_query(server: SocketAddr, name: &str, qtype: RecordType) -> Message {
    let mut stream = TcpStream::connect(server).await.unwrap();
    let mut query = Message::query();
    query.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    let bytes = query.to_vec().unwrap();
    stream
        .write_all(&u16::try_from(bytes.len()).unwrap().to_be_bytes())
        .await
        .unwrap();
    stream.write_all(&bytes).await.unwrap();
    let length = tokio::time::timeout(Duration::from_secs(5), stream.read_u16())
        .await
        .expect("an answer in time")
        .unwrap();
    let mut answer = vec![0u8; usize::from(length)];
    stream.read_exact(&mut answer).await.unwrap();
    Message::from_vec(&answer).unwrap()
}

fn addresses(message: &Message) -> Vec<Ipv4Addr> {
    let mut ips: Vec<Ipv4Addr> = message
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect();
    ips.sort();
    ips
}

/// A resolver on 127.0.0.1 that answers every A question with 192.0.2.1.
async fn fake_upstream(cancel: CancellationToken) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let address = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buffer = vec![0u8; 4096];
        loop {
            let received = tokio::select! {
                () = cancel.cancelled() => return,
                received = socket.recv_from(&mut buffer) => received,
            };
            let Ok((length, client)) = received else {
                return;
            };
            let query = Message::from_vec(&buffer[..length]).unwrap();
            let mut answer = Message::response(query.metadata.id, query.metadata.op_code);
            answer.add_queries(query.queries.clone());
            let name = query.queries[0].name().clone();
            answer.add_answer(Record::from_rdata(
                name,
                60,
                RData::A(A(Ipv4Addr::new(192, 0, 2, 1))),
            ));
            socket
                .send_to(&answer.to_vec().unwrap(), client)
                .await
                .unwrap();
        }
    });
    address
}

async fn eventually(what: &str, server: SocketAddr, name: &str, expected: &[Ipv4Addr]) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let answer = udp_query(server, name, RecordType::A).await;
        if addresses(&answer) == expected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: {name} still answers {answer:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn create<K>(client: &Client, value: serde_json::Value) -> K
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + k8s_openapi::serde::de::DeserializeOwned
        + k8s_openapi::serde::Serialize
        + std::fmt::Debug,
{
    let object: K = serde_json::from_value(value).unwrap();
    Api::<K>::namespaced(client.clone(), "shop")
        .create(&PostParams::default(), &object)
        .await
        .unwrap()
}

#[tokio::test]
async fn cluster_names_resolve_and_others_are_forwarded() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ApiServerConfig::new(dir.path().join("api"));
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.store = StoreConfig::Memory;
    let cancel = CancellationToken::new();
    let running = tugboat_apiserver::start(config, cancel.clone())
        .await
        .unwrap();
    let client =
        tugboat_testkit::kube::client(&running.url, &running.ca_pem, &running.admin_token).unwrap();
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({ "metadata": { "name": "shop" } })).unwrap(),
        )
        .await
        .unwrap();

    let web: Service = create(
        &client,
        json!({
            "metadata": { "name": "web", "namespace": "shop" },
            "spec": { "selector": { "app": "web" },
                      "ports": [{ "name": "http", "port": 80, "targetPort": 8080 }] }
        }),
    )
    .await;
    let web_ip: Ipv4Addr = web
        .spec
        .and_then(|s| s.cluster_ip)
        .unwrap()
        .parse()
        .unwrap();
    let _: Service = create(
        &client,
        json!({
            "metadata": { "name": "db", "namespace": "shop" },
            "spec": { "clusterIP": "None", "ports": [{ "name": "pg", "port": 5432 }] }
        }),
    )
    .await;
    let _: EndpointSlice = create(
        &client,
        json!({
            "metadata": { "name": "db-1", "namespace": "shop",
                          "labels": { "kubernetes.io/service-name": "db" } },
            "addressType": "IPv4",
            "ports": [{ "name": "pg", "port": 5432, "protocol": "TCP" }],
            "endpoints": [
                { "addresses": ["10.88.0.7"], "conditions": { "ready": true } },
                { "addresses": ["10.88.0.8"], "conditions": { "ready": false } }
            ]
        }),
    )
    .await;
    // A headless Service without a selector, with hand-written Endpoints.
    let _: Service = create(
        &client,
        json!({
            "metadata": { "name": "legacy", "namespace": "shop" },
            "spec": { "clusterIP": "None", "ports": [{ "port": 9000 }] }
        }),
    )
    .await;
    let _: Endpoints = create(
        &client,
        json!({
            "metadata": { "name": "legacy", "namespace": "shop" },
            "subsets": [{ "addresses": [{ "ip": "10.88.0.20" }], "ports": [{ "port": 9000 }] }]
        }),
    )
    .await;

    let upstream = fake_upstream(cancel.clone()).await;
    let dns_config = DnsConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        assign_address: false,
        upstreams: Some(vec![upstream]),
        ..DnsConfig::default()
    };
    let (udp, tcp) = dns::bind(dns_config.listen).await.unwrap();
    let server = udp.local_addr().unwrap();
    let serving = tokio::spawn(dns::serve_cluster(
        client.clone(),
        dns_config,
        udp,
        tcp,
        cancel.clone(),
    ));

    // The first answer waits for the first lists; then everything is there.
    eventually("service", server, "web.shop.svc.cluster.local.", &[web_ip]).await;
    let answer = udp_query(server, "web.shop.svc.cluster.local.", RecordType::A).await;
    assert!(answer.metadata.authoritative);
    let answer = udp_query(server, "web.shop.svc.cluster.local.", RecordType::AAAA).await;
    assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
    assert!(answer.answers.is_empty());
    assert_eq!(
        addresses(&udp_query(server, "db.shop.svc.cluster.local.", RecordType::A).await),
        [Ipv4Addr::new(10, 88, 0, 7)]
    );
    assert_eq!(
        addresses(&udp_query(server, "legacy.shop.svc.cluster.local.", RecordType::A).await),
        [Ipv4Addr::new(10, 88, 0, 20)]
    );
    let srv = udp_query(
        server,
        "_http._tcp.web.shop.svc.cluster.local.",
        RecordType::SRV,
    )
    .await;
    match srv.answers.first().map(|r| &r.data) {
        Some(RData::SRV(srv)) => {
            assert_eq!(srv.port, 80);
            assert_eq!(srv.target.to_ascii(), "web.shop.svc.cluster.local.");
        }
        other => panic!("expected an SRV record, got {other:?}"),
    }
    let missing = udp_query(server, "nope.shop.svc.cluster.local.", RecordType::A).await;
    assert_eq!(missing.metadata.response_code, ResponseCode::NXDomain);
    assert!(!missing.authorities.is_empty(), "SOA for negative caching");

    // TCP answers the same.
    assert_eq!(
        addresses(&tcp_query(server, "web.shop.svc.cluster.local.", RecordType::A).await),
        [web_ip]
    );

    // Other names go to the upstream (a fake one on 127.0.0.1).
    assert_eq!(
        addresses(&udp_query(server, "example.com.", RecordType::A).await),
        [Ipv4Addr::new(192, 0, 2, 1)]
    );

    // A deleted Service is gone within moments.
    Api::<Service>::namespaced(client.clone(), "shop")
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let answer = udp_query(server, "web.shop.svc.cluster.local.", RecordType::A).await;
        if answer.metadata.response_code == ResponseCode::NXDomain {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "web still resolves");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    cancel.cancel();
    tokio::time::timeout(WAIT, serving)
        .await
        .expect("dns stops in time")
        .unwrap();
    tokio::time::timeout(WAIT, running.stopped())
        .await
        .expect("api server stops in time");
}
