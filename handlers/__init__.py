"""Kopf handlers: thin glue between Kopf and the engine. Importing this package
registers the Node and Network handlers; `handlers.admission` registers the
webhook and is imported only when the webhook is on (operator.py). NodeSubnets
are watched outside Kopf (controller/subnetwatch.py)."""

from handlers import networks, nodes

__all__ = ["networks", "nodes"]
