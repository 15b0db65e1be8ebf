"""Pure logic of the network operator: spec parsing and validation, the
per-node subnet allocator, label selectors, the Node annotation format and
status building. Nothing here imports kopf or talks to Kubernetes, so all of
it is tested without a cluster."""
