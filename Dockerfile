# Calciphylaxis CDS service image.
# Build stage compiles the wheels (durable-rules has no wheel on PyPI and needs gcc);
# the final stage has no compiler, runs as a non-root user and reads rules from /app/rules,
# which can be mounted over to deploy a new rule set without a new image.
FROM python:3.11-slim-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY cds ./cds
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim-bookworm
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin cds \
 && mkdir -p /app/data \
 && chown cds:cds /app/data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links=/wheels "calciphylaxis-cds==0.1.0" \
 && rm -rf /wheels
WORKDIR /app
COPY rules /app/rules
# The rule tests run before a rule set is served (at start and on every reload) and read their
# cases from fhir_examples beside rules/: without it the service refuses its own rules.
COPY fhir_examples /app/fhir_examples
# Two workers share one jti store (the database) so a replayed token is refused by either;
# "auto" picks it, it is spelled out here for whoever reads the image.
ENV PYTHONUNBUFFERED=1 \
    CDS_HOST=0.0.0.0 \
    CDS_PORT=8080 \
    CDS_WORKERS=2 \
    CDS_RULES_DIR=/app/rules \
    CDS_DATABASE_URL=sqlite:////app/data/cds.sqlite3 \
    CDS_AUDIT_SPOOL_DIR=/app/data/audit-spool \
    CDS_JWT_REPLAY_STORE=database
USER 10001
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status != 200)"]
CMD ["cds", "serve"]
