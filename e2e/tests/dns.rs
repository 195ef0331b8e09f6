//! Cluster DNS on real containers: from inside a busybox pod, `nslookup` finds a Service by
//! its full name, `GET http://web/` (busybox `nc`) reaches it by the short name through the pod's search
//! path, a headless Service resolves to the ready pods' IPs, named ports have SRV records,
//! and the pod's resolv.conf is what kubelet would write.
//!
//! Every name asked is in the cluster zone, so no question leaves the machine. Needs root and
//! containerd (CI installs both).

use std::time::Duration;

use tugboat_e2e::containers::{containers_or_skip, stop_and_reset, wait_for};
use tugboat_e2e::{Cluster, kubectl_or_skip};

const APP: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: busybox
        command: ["sh", "-c", "mkdir -p /www && echo hello-from-web > /www/index.html && exec httpd -f -p 8080 -h /www"]
        ports: [{name: http, containerPort: 8080}]
        readinessProbe:
          tcpSocket: {port: 8080}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: web-pods, namespace: shop}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: shop}
spec:
  containers:
  - name: main
    image: busybox
    command: ["sleep", "3600"]
"#;

/// A shell command for `GET /` on `host:port` with busybox `nc`.
fn http_get(host: &str, port: u16) -> String {
    format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {host} {port}")
}

#[test]
fn service_names_resolve_inside_pods_on_real_containers() {
    if !containers_or_skip() || kubectl_or_skip().is_none() {
        return;
    }
    let mut cluster = Cluster::start_containerd().expect("tug up on containerd");
    let k = cluster.kubectl().expect("kubectl");
    wait_for("the node to be Ready", Duration::from_secs(60), || {
        k.ok(&["get", "nodes", "--no-headers"])
            .is_ok_and(|out| out.contains(" Ready "))
    });
    k.ok(&["create", "namespace", "shop"]).unwrap();
    k.apply(APP).expect("apply the app");
    let k = k.namespace("shop");
    k.ok(&["rollout", "status", "deployment/web", "--timeout=120s"])
        .expect("web rolls out");
    k.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/client",
        "--timeout=90s",
    ])
    .expect("the client pod is Ready");
    let cluster_ip = k.get_jsonpath(&["service", "web"], "{.spec.clusterIP}");
    let pod_ips = k.get_jsonpath(&["pods", "-l", "app=web"], "{.items[*].status.podIP}");
    let pod_ips: Vec<&str> = pod_ips.split_whitespace().collect();
    assert_eq!(pod_ips.len(), 2, "{pod_ips:?}");
    let exec = |command: &str| {
        k.run(&["exec", "client", "--", "sh", "-c", command])
            .map(|out| {
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                )
            })
            .unwrap_or_default()
    };

    // The pod's resolv.conf, as kubelet writes it for dnsPolicy: ClusterFirst.
    let resolv = exec("cat /etc/resolv.conf");
    assert!(resolv.contains("nameserver 10.96.0.10"), "{resolv}");
    assert!(
        resolv.contains("search shop.svc.cluster.local svc.cluster.local cluster.local"),
        "{resolv}"
    );
    assert!(resolv.contains("ndots:5"), "{resolv}");

    // The full name gives the ClusterIP (the DNS server may take a moment to start).
    let mut lookup = String::new();
    wait_for("nslookup of the Service", Duration::from_secs(30), || {
        lookup = exec("nslookup web.shop.svc.cluster.local");
        lookup.contains(&cluster_ip)
    });
    assert!(lookup.contains("10.96.0.10"), "answered by: {lookup}");

    // The short name through the search path, and HTTP through the ClusterIP.
    // (HTTP with `nc`: this busybox build's `wget` crashes inside a container, even on an IP.)
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let page = exec(&http_get("web", 80));
        if page.contains("hello-from-web") {
            break;
        }
        if std::time::Instant::now() > deadline {
            let by_ip = exec(&http_get(&cluster_ip, 80));
            let short = exec("nslookup web");
            panic!(
                "GET http://web/ answered {page:?}; by ClusterIP: {by_ip:?}; nslookup web: {short}"
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }

    // Headless: the ready pods' own IPs.
    let headless = exec("nslookup web-pods.shop.svc.cluster.local");
    for ip in &pod_ips {
        assert!(headless.contains(ip), "{ip} missing from {headless}");
    }
    assert!(!headless.contains(&cluster_ip), "{headless}");
    // ...and reachable by the name of one of them.
    let dashed = pod_ips[0].replace('.', "-");
    let one = exec(&http_get(
        &format!("{dashed}.web-pods.shop.svc.cluster.local"),
        8080,
    ));
    assert!(one.contains("hello-from-web"), "{one}");

    // A Service without a selector routes to its hand-written Endpoints (one web pod here),
    // by ClusterIP and by name.
    k.apply(&format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: legacy, namespace: shop}}\n\
         spec: {{ports: [{{port: 80, targetPort: 8080}}]}}\n---\n\
         apiVersion: v1\nkind: Endpoints\nmetadata: {{name: legacy, namespace: shop}}\n\
         subsets: [{{addresses: [{{ip: {}}}], ports: [{{port: 8080}}]}}]\n",
        pod_ips[0]
    ))
    .expect("apply the selectorless Service");
    let legacy_ip = k.get_jsonpath(&["service", "legacy"], "{.spec.clusterIP}");
    let mut legacy = String::new();
    wait_for("the selectorless Service", Duration::from_secs(30), || {
        legacy = exec(&http_get("legacy", 80));
        legacy.contains("hello-from-web")
    });
    let by_ip = exec(&http_get(&legacy_ip, 80));
    assert!(by_ip.contains("hello-from-web"), "{by_ip}");

    // SRV for the named port.
    let srv = exec("nslookup -type=srv _http._tcp.web.shop.svc.cluster.local");
    assert!(srv.contains("web.shop.svc.cluster.local"), "{srv}");
    assert!(srv.contains(" 80 "), "port 80 in {srv}");

    // Unknown names in the zone fail.
    let missing = exec("nslookup nope.shop.svc.cluster.local");
    assert!(
        missing.contains("NXDOMAIN") || missing.contains("can't find"),
        "{missing}"
    );

    stop_and_reset(&mut cluster).expect("tug reset");
}
