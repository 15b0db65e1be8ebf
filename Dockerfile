# The operator's image: `kopf run` on operator.py, as user 10001.
# The Helm chart (deploy/helm/network-operator) runs it with the same command,
# its ports taken from values.

# Builder: the runtime dependencies in a virtualenv, copied whole below.
FROM python:3.11.7-slim-bookworm AS builder
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY requirements.txt /tmp/requirements.txt
RUN pip install --no-cache-dir -r /tmp/requirements.txt

# Runtime: the virtualenv and the operator's code, nothing else.
FROM python:3.11.7-slim-bookworm
# Not "operator": Debian already has a group of that name.
RUN groupadd --gid 10001 app \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin app
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
COPY operator.py /app/operator.py
COPY handlers/ /app/handlers/
COPY controller/ /app/controller/
COPY netpool/ /app/netpool/
USER 10001
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
# 8080: Kopf's /healthz, 9090: the operator's HTTP endpoint, 9443: the admission webhook.
EXPOSE 8080 9090 9443
ENTRYPOINT ["kopf", "run", "--all-namespaces", "--liveness=http://0.0.0.0:8080/healthz", "/app/operator.py"]
