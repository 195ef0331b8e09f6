#!/usr/bin/env bash
# Issue 9's "new connections through a ClusterIP are 4x slower": a minimal reproduction with no
# Tugboat code. One DNAT rule (VIP 10.96.1.0:80 -> 10.88.7.2:8080) in a "node" namespace, a
# client and a server "pod" joined to it by veth pairs. The client opens one connection per
# request, in rounds alternating between the pod IP and the VIP, all from ONE source address.
#
# What happens: after the DNAT both paths are the same 4-tuple at the server, which keeps each
# closed connection in TIME_WAIT (60 s). The client's kernel draws TCP timestamp offsets (and
# ISNs) per destination address, so a SYN to the VIP that reuses a port the pod-IP path just used
# carries an unrelated, often older, timestamp: the server's TIME_WAIT socket rejects it and
# answers with an ACK, the client resets and retransmits the SYN (~16 ms later). When conntrack
# also finds the other path's entry for the port, it SNATs the new connection to another random
# port, which can meet another TIME_WAIT: the second retransmit waits the full 1 s RTO.
# Each path alone is as fast as the other; so is the alternation with the client's per-destination
# timestamp offsets off (net.ipv4.tcp_timestamps=2), the control run at the end.
#
# Needs root, ip, iptables and python3; touches only namespaces it creates. On a shared machine
# run it under the containers lock: flock /tmp/tug-containers.lock scripts/repro-dnat-timewait.sh
set -euo pipefail

round_seconds=${ROUND_SECONDS:-3}
p=tugrepro-$$
node=$p-node client=$p-client server=$p-server
work=$(mktemp -d)
server_pid=
cleanup() {
  if [[ -n $server_pid ]]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=
  fi
  for ns in "$node" "$client" "$server"; do ip netns del "$ns" 2>/dev/null || true; done
}
trap 'cleanup; rm -rf "$work"' EXIT

cat >"$work/server.py" <<'EOF'
import socket
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("10.88.7.2", 8080))
listener.listen(1024)
while True:
    conn, _ = listener.accept()
    try:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(1024)
            if not chunk:
                break
            data += chunk
        conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 6\r\n\r\nhello\n")
    finally:
        conn.close()  # the server closes first: it holds the TIME_WAIT
EOF
cat >"$work/client.py" <<'EOF'
import socket, sys, time
host, port = sys.argv[1].rsplit(":", 1)
duration = float(sys.argv[2])
latencies, failed = [], 0
deadline = time.monotonic() + duration
while time.monotonic() < deadline:
    s = socket.socket()
    s.settimeout(3)
    s.bind(("10.88.7.3", 0))
    started = time.monotonic()
    try:
        s.connect((host, int(port)))
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        while s.recv(1024):
            pass
        latencies.append(time.monotonic() - started)
    except OSError:
        failed += 1
    s.close()
latencies.sort()
pick = lambda q: latencies[min(len(latencies) - 1, round((len(latencies) - 1) * q))] * 1e3
print(f"{sys.argv[1]:>15}: {len(latencies) / duration:6.0f} req/s, p50 {pick(.5):.2f} ms, "
      f"p99 {pick(.99):.2f} ms, max {latencies[-1] * 1e3:.0f} ms, "
      f"{sum(l > .9 for l in latencies)} > 900 ms, {failed} failed", end="")
EOF

plug() { # pod-namespace node-side-name address
  ip -n "$node" link add "$2" type veth peer name eth0 netns "$1"
  ip -n "$node" link set "$2" up
  ip -n "$node" addr add 10.88.0.1/32 dev "$2"
  ip -n "$node" route add "$3/32" dev "$2"
  ip -n "$1" link set lo up
  ip -n "$1" link set eth0 up
  ip -n "$1" addr add "$3/32" dev eth0
  ip -n "$1" route add 10.88.0.1/32 dev eth0
  ip -n "$1" route add default via 10.88.0.1
}
setup() { # fresh namespaces: no TIME_WAIT or conntrack entry left from an earlier run
  for ns in "$node" "$client" "$server"; do ip netns add "$ns"; done
  ip -n "$node" link set lo up
  ip netns exec "$node" sysctl -qw net.ipv4.ip_forward=1
  plug "$client" veth-c 10.88.7.3
  plug "$server" veth-s 10.88.7.2
  ip netns exec "$node" iptables -t nat -A PREROUTING -d 10.96.1.0/32 -p tcp --dport 80 \
    -j DNAT --to-destination 10.88.7.2:8080
  ip netns exec "$server" python3 "$work/server.py" &
  server_pid=$!
  sleep 0.5
}
syn_retransmits() {
  ip netns exec "$client" awk '/^TcpExt:/ { if (!n) { for (i = 1; i <= NF; i++) if ($i == "TCPSynRetrans") c = i; n = 1 } else print $c }' /proc/net/netstat
}
round() { # address
  local before
  before=$(syn_retransmits)
  ip netns exec "$client" python3 "$work/client.py" "$1" "$round_seconds"
  echo ", $(($(syn_retransmits) - before)) SYN retransmits"
}
alternate() {
  for addr in 10.88.7.2:8080 10.96.1.0:80 10.88.7.2:8080 10.96.1.0:80; do round "$addr"; done
}

echo "one client, alternating pod IP and ClusterIP (default sysctls):"
setup
alternate
cleanup
echo "control: the same with the client's per-destination timestamp offsets off (tcp_timestamps=2):"
setup
ip netns exec "$client" sysctl -qw net.ipv4.tcp_timestamps=2
alternate
