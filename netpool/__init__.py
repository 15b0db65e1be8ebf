"""Pure logic of the network operator: spec parsing and validation, the
per-node subnet allocator, label selectors, the Node annotation format,
status building and one Network's desired state in a round. Nothing here
imports kopf or talks to Kubernetes, so all of it is tested without a
cluster."""
