"""Kopf handlers: thin glue between Kopf and the engine. Importing this package registers them."""

from handlers import admission, networks, nodes

__all__ = ["admission", "networks", "nodes"]
