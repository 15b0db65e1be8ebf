"""The operator's names in the Kubernetes API, spelled here once: its API
group and kinds, the keys it writes on other objects, and the key of a
Network everywhere in the operator."""

from __future__ import annotations

GROUP = "samplecrd.k8s.io"
VERSION = "v1"
API_VERSION = f"{GROUP}/{VERSION}"
NETWORKS = "networks"  # the plural of each kind, as in API paths
NODESUBNETS = "nodesubnets"

# A Node's annotation of one Network: this prefix, then <namespace>.<name> (netpool/annotation.py).
ANNOTATION_PREFIX = f"network.{GROUP}/"
# A NodeSubnet's labels (netpool/records.py).
LABEL_NETWORK = f"{GROUP}/network"  # <namespace>.<name>, shortened as the annotation key is
LABEL_NETWORK_UID = f"{GROUP}/network-uid"
LABEL_NODE = f"{GROUP}/node"  # the Node's name, shortened the same way when too long
# Kopf's finalizer on Networks, and the prefix of its state annotations on them.
FINALIZER = f"{GROUP}/network-operator"
KOPF_PREFIX = GROUP

Key = tuple[str, str]  # (namespace, name) of a Network
