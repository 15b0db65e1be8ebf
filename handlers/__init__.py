"""Kopf handlers: thin glue between Kopf and the engine. Importing this package registers them."""

from handlers import networks, nodes

__all__ = ["networks", "nodes"]
