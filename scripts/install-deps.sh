#!/usr/bin/env bash
# Installs the system packages Tugboat needs (see shared CONTRACT.md), idempotently.
# Quiet when nothing is missing. Not root and something missing: says what to install, exits 2.
set -euo pipefail

# package -> a file that proves it is installed
declare -A probe=(
  [protobuf-compiler]=/usr/bin/protoc
  # etcd-client's protos import google/protobuf/descriptor.proto, which protoc alone lacks.
  [libprotobuf-dev]=/usr/include/google/protobuf/descriptor.proto
  [containerd]=/usr/bin/containerd
  [runc]=/usr/sbin/runc
  [containernetworking-plugins]=/usr/lib/cni/bridge
  [busybox-static]=/bin/busybox
  [iptables]=/usr/sbin/iptables
  [iproute2]=/usr/sbin/ip
  [etcd-server]=/usr/bin/etcd
  [etcd-client]=/usr/bin/etcdctl
  # CronJobs' spec.timeZone is read from the system's zoneinfo.
  [tzdata]=/usr/share/zoneinfo/UTC
)

missing=()
for pkg in protobuf-compiler libprotobuf-dev containerd runc containernetworking-plugins busybox-static iptables iproute2 etcd-server etcd-client tzdata; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || [ ! -e "${probe[$pkg]}" ]; then
    missing+=("$pkg")
  fi
done

# The official Python client, for the e2e check that it works against Tugboat unchanged.
if ! python3 -c 'import kubernetes' 2>/dev/null; then
  if [ "$(id -u)" -eq 0 ] && python3 -m pip --version >/dev/null 2>&1; then
    echo "tugboat: installing the Python client (pip install kubernetes)" >&2
    python3 -m pip install -q --disable-pip-version-check kubernetes==37.0.2 >/dev/null ||
      echo "tugboat: pip install kubernetes failed; the Python client check will fail under CI" >&2
  else
    echo "tugboat: the Python client check will skip: python3 -m pip install kubernetes" >&2
  fi
fi

[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "tugboat: missing system packages: ${missing[*]}" >&2
  echo "tugboat: install them as root: apt-get install -y ${missing[*]}" >&2
  exit 2
fi

echo "tugboat: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# etcd-server's maintainer scripts would start a system etcd on :2379; we never want that.
policy_rc=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy_rc" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy_rc" && chmod +x "$policy_rc" && made_policy=1
fi
# An `if`, not `&&`: under `set -e` a false test as the trap's last command would turn a
# successful install into exit 1 (machines whose image already has a policy-rc.d).
cleanup() {
  if [ "$made_policy" = 1 ]; then rm -f "$policy_rc"; fi
}
trap cleanup EXIT

install() { apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; }
if ! install; then
  # A fresh machine may have stale package lists: refresh once and retry.
  apt-get update -q >/dev/null
  install
fi
