//! Which pod IPs this node's rules route to, as last applied — so that a terminating pod's
//! containers are stopped only once no Service sends it traffic here (Kubernetes leaves that
//! race to a preStop sleep).

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::rules::ServicePortRules;

/// The proxy's side: publishes the backends of every rule set it applies.
#[derive(Debug)]
pub struct RoutedEndpoints {
    sender: watch::Sender<Option<Arc<HashSet<Ipv4Addr>>>>,
}

/// The pod syncer's side: waits for an IP to leave the applied rules.
#[derive(Debug, Clone)]
pub struct RoutedView {
    receiver: watch::Receiver<Option<Arc<HashSet<Ipv4Addr>>>>,
}

/// A publisher and a view of it. Until the first publish nothing is known.
pub fn channel() -> (RoutedEndpoints, RoutedView) {
    let (sender, receiver) = watch::channel(None);
    (RoutedEndpoints { sender }, RoutedView { receiver })
}

impl RoutedEndpoints {
    /// Records that the rules for `ports` are now in the kernel.
    pub fn publish(&self, ports: &[ServicePortRules]) {
        let ips: HashSet<Ipv4Addr> = ports
            .iter()
            .flat_map(|port| port.backends.iter().map(|backend| backend.ip))
            .collect();
        self.sender.send_replace(Some(Arc::new(ips)));
    }
}

impl RoutedView {
    /// Waits until the applied rules no longer route to `ip`, at most `limit`. True when it
    /// left (or was never routed), false when the limit ran out first.
    pub async fn wait_unrouted(&self, ip: Ipv4Addr, limit: Duration) -> bool {
        let mut receiver = self.receiver.clone();
        let left =
            receiver.wait_for(|routed| routed.as_ref().is_some_and(|ips| !ips.contains(&ip)));
        tokio::time::timeout(limit, left)
            .await
            .is_ok_and(|changed| changed.is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::rules::{Backend, Protocol};

    fn port(ips: &[Ipv4Addr]) -> ServicePortRules {
        ServicePortRules {
            id: "default/web:http".into(),
            cluster_ip: Some(Ipv4Addr::new(10, 96, 0, 10)),
            port: 80,
            protocol: Protocol::Tcp,
            node_port: None,
            affinity_seconds: None,
            backends: ips
                .iter()
                .map(|ip| Backend {
                    ip: *ip,
                    port: 8080,
                })
                .collect(),
        }
    }

    #[tokio::test]
    async fn waits_until_the_applied_rules_drop_the_ip() {
        let (publisher, view) = channel();
        let (a, b) = (Ipv4Addr::new(10, 88, 0, 2), Ipv4Addr::new(10, 88, 0, 3));
        // Nothing applied yet: unknown, so it waits (here until the limit).
        assert!(!view.wait_unrouted(a, Duration::from_millis(50)).await);
        publisher.publish(&[port(&[a, b])]);
        assert!(
            view.wait_unrouted(Ipv4Addr::new(10, 88, 0, 9), Duration::from_secs(1))
                .await
        );
        let waiting = tokio::spawn({
            let view = view.clone();
            async move { view.wait_unrouted(a, Duration::from_secs(30)).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiting.is_finished());
        publisher.publish(&[port(&[b])]);
        assert!(
            tokio::time::timeout(Duration::from_secs(5), waiting)
                .await
                .unwrap()
                .unwrap()
        );
    }
}
