"""Kopf handlers: thin glue between Kopf and the engine. Importing this package
registers the Node, NodeSubnet and Network handlers; `handlers.admission` registers the
webhook and is imported only when the webhook is on (operator.py)."""

from handlers import networks, nodes, nodesubnets

__all__ = ["networks", "nodes", "nodesubnets"]
