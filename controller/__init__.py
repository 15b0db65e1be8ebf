"""The controller behind the Kopf handlers: the reconcile engine, the API
client, settings, metrics and the read-only HTTP view. Never imports kopf, so
it runs and is tested without Kopf's machinery."""

# The operator's version (network_operator_build_info); the chart's appVersion is checked equal.
VERSION = "0.1.0"
