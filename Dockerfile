# The Lifecycle Notify worker, for docker-compose.yml and production.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LIFECYCLE_RULES_DIR=/srv/lifecycle/rules \
    LIFECYCLE_TEMPLATES_DIR=/srv/lifecycle/templates \
    LIFECYCLE_POLICIES_DIR=/srv/lifecycle/policies

WORKDIR /srv/lifecycle
COPY pyproject.toml README.md constraints.txt ./
COPY app ./app
COPY agents ./agents
COPY wiring ./wiring
COPY topics ./topics
COPY console ./console
COPY lifecycle ./lifecycle
# devstack/ (the local stack of `lifecycle dev`) is left out: a production image never runs it
RUN pip install --no-cache-dir -c constraints.txt . \
 && useradd --system --uid 10001 lifecycle \
 && mkdir -p /var/outbox && chown lifecycle /var/outbox
COPY rules ./rules
COPY templates ./templates
COPY policies ./policies

USER lifecycle
EXPOSE 6066
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health/' % os.environ.get('LIFECYCLE_WEB_PORT', '6066'), timeout=4)"
CMD ["lifecycle", "worker"]
