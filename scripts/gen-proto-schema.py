#!/usr/bin/env python3
"""Generate api/src/protobuf/schema.rs: the wire schema of the Kubernetes kinds Tugboat decodes.

Reads the `generated.proto` files (field numbers, proto types) and the Go `types.go` files
(JSON names, `omitempty`, pointer fields, `json:",inline"` embedding) of k8s.io/api and
k8s.io/apimachinery at one release, keeps only the messages reachable from ROOTS, and writes
a Rust table. Nothing upstream is committed: only this derived table.

Usage: scripts/gen-proto-schema.py API_CHECKOUT APIMACHINERY_CHECKOUT > api/src/protobuf/schema.rs
(checkouts of kubernetes/api and kubernetes/apimachinery at the same tag, e.g. v0.32.9),
then `cargo fmt --all`.
"""

import re
import sys
from pathlib import Path

# (proto package, directory relative to its checkout, which checkout)
PACKAGES = [
    ("k8s.io.api.core.v1", "core/v1", "api"),
    ("k8s.io.api.apps.v1", "apps/v1", "api"),
    ("k8s.io.api.batch.v1", "batch/v1", "api"),
    ("k8s.io.api.autoscaling.v1", "autoscaling/v1", "api"),
    ("k8s.io.api.autoscaling.v2", "autoscaling/v2", "api"),
    ("k8s.io.api.policy.v1", "policy/v1", "api"),
    ("k8s.io.api.rbac.v1", "rbac/v1", "api"),
    ("k8s.io.api.scheduling.v1", "scheduling/v1", "api"),
    ("k8s.io.api.coordination.v1", "coordination/v1", "api"),
    ("k8s.io.api.authentication.v1", "authentication/v1", "api"),
    ("k8s.io.api.authorization.v1", "authorization/v1", "api"),
    ("k8s.io.apimachinery.pkg.apis.meta.v1", "pkg/apis/meta/v1", "apimachinery"),
    ("k8s.io.apimachinery.pkg.api.resource", "pkg/api/resource", "apimachinery"),
    ("k8s.io.apimachinery.pkg.util.intstr", "pkg/util/intstr", "apimachinery"),
    ("k8s.io.apimachinery.pkg.runtime", "pkg/runtime", "apimachinery"),
    ("k8s.io.apimachinery.pkg.runtime.schema", "pkg/runtime/schema", "apimachinery"),
]

# The kinds a client may POST as protobuf: (apiVersion, kind, proto package).
ROOTS = [
    ("v1", kind, "k8s.io.api.core.v1")
    for kind in [
        "Binding", "ConfigMap", "Endpoints", "Event", "LimitRange", "Namespace", "Node",
        "PersistentVolume", "PersistentVolumeClaim", "Pod", "ReplicationController",
        "ResourceQuota", "Secret", "Service", "ServiceAccount",
    ]
] + [
    ("apps/v1", kind, "k8s.io.api.apps.v1")
    for kind in ["ControllerRevision", "DaemonSet", "Deployment", "ReplicaSet", "StatefulSet"]
] + [
    ("authentication.k8s.io/v1", "SelfSubjectReview", "k8s.io.api.authentication.v1"),
    ("authentication.k8s.io/v1", "TokenRequest", "k8s.io.api.authentication.v1"),
    ("authorization.k8s.io/v1", "LocalSubjectAccessReview", "k8s.io.api.authorization.v1"),
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview", "k8s.io.api.authorization.v1"),
    ("authorization.k8s.io/v1", "SelfSubjectRulesReview", "k8s.io.api.authorization.v1"),
    ("authorization.k8s.io/v1", "SubjectAccessReview", "k8s.io.api.authorization.v1"),
    ("autoscaling/v1", "HorizontalPodAutoscaler", "k8s.io.api.autoscaling.v1"),
    ("autoscaling/v1", "Scale", "k8s.io.api.autoscaling.v1"),
    ("autoscaling/v2", "HorizontalPodAutoscaler", "k8s.io.api.autoscaling.v2"),
    ("batch/v1", "CronJob", "k8s.io.api.batch.v1"),
    ("batch/v1", "Job", "k8s.io.api.batch.v1"),
    ("coordination.k8s.io/v1", "Lease", "k8s.io.api.coordination.v1"),
    ("policy/v1", "Eviction", "k8s.io.api.policy.v1"),
    ("policy/v1", "PodDisruptionBudget", "k8s.io.api.policy.v1"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole", "k8s.io.api.rbac.v1"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "k8s.io.api.rbac.v1"),
    ("rbac.authorization.k8s.io/v1", "Role", "k8s.io.api.rbac.v1"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding", "k8s.io.api.rbac.v1"),
    ("scheduling.k8s.io/v1", "PriorityClass", "k8s.io.api.scheduling.v1"),
]

# Messages whose JSON form is not an object; the decoder handles them by name, so their
# fields are still listed but their Go struct information is irrelevant.
SPECIAL = {
    "k8s.io.apimachinery.pkg.util.intstr.IntOrString": "IntOrString",
    "k8s.io.apimachinery.pkg.api.resource.Quantity": "Quantity",
    "k8s.io.apimachinery.pkg.apis.meta.v1.Time": "Time",
    "k8s.io.apimachinery.pkg.apis.meta.v1.MicroTime": "MicroTime",
    "k8s.io.apimachinery.pkg.apis.meta.v1.FieldsV1": "FieldsV1",
    "k8s.io.apimachinery.pkg.runtime.RawExtension": "RawExtension",
}

SCALARS = {"bool": "Bool", "bytes": "Bytes", "int32": "Int32", "int64": "Int64", "string": "String"}

FIELD_RE = re.compile(r"^\s*(optional|repeated|required)\s+(\S+)\s+(\w+)\s*=\s*(\d+)\s*;")
MAP_RE = re.compile(r"^\s*map<\s*string\s*,\s*(\S+)\s*>\s+(\w+)\s*=\s*(\d+)\s*;")
GO_STRUCT_RE = re.compile(r"^type (\w+) struct \{")
GO_FIELD_RE = re.compile(r"^\s*(?:(\w+)\s+)?([*\[\]\w.]+)\s+`(.*)`\s*$")


def parse_proto(path, package):
    """Returns {full message name: [(number, proto name, label, type)]}."""
    messages = {}
    current = None
    for line in path.read_text().splitlines():
        line = line.split("//", 1)[0]
        m = re.match(r"^message (\w+) \{", line)
        if m:
            current = f"{package}.{m.group(1)}"
            messages[current] = []
            continue
        if line.startswith("}"):
            current = None
            continue
        if current is None:
            continue
        m = FIELD_RE.match(line)
        if m:
            label, typ, name, number = m.groups()
            messages[current].append((int(number), name, label, resolve(typ, package)))
            continue
        m = MAP_RE.match(line)
        if m:
            typ, name, number = m.groups()
            messages[current].append((int(number), name, "map", resolve(typ, package)))
            continue
        if line.strip():
            sys.exit(f"unparsed line in {path}: {line!r}")
    return messages


def resolve(typ, package):
    if typ in SCALARS:
        return typ
    if typ.startswith("."):
        return typ[1:]
    return f"{package}.{typ}"


def parse_go(directory, package):
    """Returns {(full message name, field number): (json name, omitempty, pointer, inline)}."""
    info = {}
    for path in sorted(directory.glob("*.go")):
        if path.name.endswith("_test.go") or path.name.startswith("zz_generated"):
            continue
        struct = None
        for line in path.read_text().splitlines():
            m = GO_STRUCT_RE.match(line)
            if m:
                struct = f"{package}.{m.group(1)}"
                continue
            if line.startswith("}"):
                struct = None
                continue
            if struct is None:
                continue
            m = GO_FIELD_RE.match(line)
            if not m:
                continue
            _, go_type, tags = m.groups()
            json_tag = re.search(r'json:"([^"]*)"', tags)
            proto_tag = re.search(r'protobuf:"[a-z0-9]+,(\d+),', tags)
            if not json_tag or not proto_tag:
                continue
            parts = json_tag.group(1).split(",")
            info[(struct, int(proto_tag.group(1)))] = (
                parts[0],
                "omitempty" in parts[1:],
                go_type.startswith("*"),
                "inline" in parts[1:],
            )
    return info


def const_name(full):
    package, _, name = full.rpartition(".")
    short = package.replace("k8s.io.api.", "").replace("k8s.io.apimachinery.pkg.apis.", "")
    short = short.replace("k8s.io.apimachinery.pkg.", "")
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name)
    return (short.replace(".", "_") + "_" + snake).upper()


def main():
    roots = {"api": Path(sys.argv[1]), "apimachinery": Path(sys.argv[2])}
    messages, go_info = {}, {}
    for package, directory, checkout in PACKAGES:
        base = roots[checkout] / directory
        messages.update(parse_proto(base / "generated.proto", package))
        go_info.update(parse_go(base, package))

    reachable, stack = set(), [f"{pkg}.{kind}" for _, kind, pkg in ROOTS]
    while stack:
        name = stack.pop()
        if name in reachable:
            continue
        if name not in messages:
            sys.exit(f"message {name} not found: add its package to PACKAGES")
        reachable.add(name)
        stack.extend(t for _, _, _, t in messages[name] if t not in SCALARS)

    # meta/v1 Duration is a Go duration string in JSON; no served kind uses it yet.
    if "k8s.io.apimachinery.pkg.apis.meta.v1.Duration" in reachable:
        sys.exit("meta/v1 Duration is reachable: teach the decoder its JSON form first")

    out = [
        "//! Wire schema of the Kubernetes kinds Tugboat decodes from protobuf (Kubernetes 1.32).",
        "//!",
        "//! Generated by `scripts/gen-proto-schema.py` from the upstream `generated.proto` and",
        "//! `types.go` files; do not edit by hand.",
        "",
        "use super::schema_types::{Field, Form, Kind, Message};",
        "",
        "/// The kinds a client may send as protobuf: apiVersion, kind and their message.",
        "pub(crate) static KINDS: &[(&str, &str, &Message)] = &[",
    ]
    for api_version, kind, pkg in ROOTS:
        out.append(f'    ("{api_version}", "{kind}", &{const_name(pkg + "." + kind)}),')
    out.append("];")
    for name in sorted(reachable):
        out.append("")
        out.append(f"pub(crate) static {const_name(name)}: Message = Message {{")
        out.append(f'    name: "{name}",')
        out.append(f"    form: Form::{SPECIAL.get(name, 'Object')},")
        out.append("    fields: &[")
        for number, proto_name, label, typ in messages[name]:
            json_name, omitempty, pointer, inline = go_info.get(
                (name, number), (proto_name, False, True, False)
            )
            if name not in SPECIAL and (name, number) not in go_info:
                print(f"warning: no Go field for {name} #{number}", file=sys.stderr)
            if not inline and json_name != proto_name and name not in SPECIAL:
                print(f"note: {name}.{proto_name} is JSON {json_name}", file=sys.stderr)
            kind = f"Kind::{SCALARS[typ]}" if typ in SCALARS else f"Kind::Message(&{const_name(typ)})"
            ctor = {"optional": "single", "required": "single", "repeated": "repeated", "map": "map"}[label]
            field = f'Field::{ctor}({number}, "{json_name}", {kind})'
            if inline:
                field += ".inline()"
            elif label != "map" and label != "repeated" and typ in SCALARS and omitempty and not pointer:
                field += ".omit_zero()"
            out.append(f"        {field},")
        out.append("    ],")
        out.append("};")
    print("\n".join(out))
    print(f"{len(reachable)} messages", file=sys.stderr)


if __name__ == "__main__":
    main()
