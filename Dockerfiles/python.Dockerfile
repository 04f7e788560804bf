# taskbox executor image "python": user tasks from code bundles (taskbox fast-execute; with the flyte2 extra,
# flyte-sdk tasks under `a0`).
#
# Build context: made by `taskbox image build --variant VARIANT`: requirements.txt, the taskbox wheel in
# dist/, images/strip_venv.py, images/bin/ (flytekit's command names) and the host's CA bundle,
# which only the builder stage sees (pip inside the build goes through an HTTPS proxy on the test machines).
ARG BASE_IMAGE=python:3.12-slim-bookworm

FROM ${BASE_IMAGE} AS builder
# Flyte 2 user tasks (`a0`, handed to the flyte SDK's runtime): --build-arg EXTRAS=s3,gcs,tables,run,flyte2
ARG EXTRAS=s3,gcs,tables,run
# Common data libraries are optional: --build-arg EXTRA_PACKAGES="pandas numpy" (pip requirements).
ARG EXTRA_PACKAGES=""
ENV PIP_CERT=/build/ca-certificates.crt \
    SSL_CERT_FILE=/build/ca-certificates.crt \
    PIP_NO_CACHE_DIR=1 \
    PIP_NO_COMPILE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_PROGRESS_BAR=off \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /build
# Dependencies first, in a layer of their own (requirements.txt: pyproject's, for the default EXTRAS):
# the build cache keeps it while they are unchanged, so a source change rebuilds in seconds.
COPY ca-certificates.crt requirements.txt ./
RUN python3 -m venv /opt/taskbox \
    && /opt/taskbox/bin/python -m pip install --no-cache-dir -r requirements.txt
COPY strip_venv.py ./
COPY dist/ dist/
RUN set -- dist/taskbox-*.whl \
    && /opt/taskbox/bin/python -m pip install --no-cache-dir "$1[${EXTRAS}]" ${EXTRA_PACKAGES} \
    && /opt/taskbox/bin/python strip_venv.py /opt/taskbox \
    && /opt/taskbox/bin/python -c "import pyarrow.parquet, s3fs, gcsfs" \
    && /opt/taskbox/bin/taskbox executors
# flytekit's and Flyte 2's command names (pyflyte-execute, pyflyte-fast-execute, a0), after pip: ours win.
COPY bin/ /opt/taskbox/bin/

FROM ${BASE_IMAGE}
ARG BASE_IMAGE
ARG VERSION=0.0.0
ARG REVISION=unknown
ARG CREATED=1970-01-01T00:00:00Z
LABEL org.opencontainers.image.title="taskbox-python" \
      org.opencontainers.image.description="taskbox for user tasks from code bundles, with pyarrow for tables" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="https://github.com/taskbox/taskbox" \
      org.opencontainers.image.url="https://github.com/taskbox/taskbox" \
      org.opencontainers.image.documentation="https://github.com/taskbox/taskbox#readme" \
      org.opencontainers.image.vendor="taskbox" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${BASE_IMAGE}" \
      dev.taskbox.variant="python"
# The runtime installs nothing: pip leaves the base interpreter too (its bytes stay in the parent layer).
RUN groupadd --system --gid 65532 taskbox \
    && useradd --system --uid 65532 --gid 65532 --home-dir /tmp --no-create-home --shell /usr/sbin/nologin taskbox \
    && rm -rf /usr/local/bin/pip* /usr/local/lib/python3*/site-packages/pip /usr/local/lib/python3*/site-packages/pip-*
COPY --from=builder /opt/taskbox /opt/taskbox
ENV PATH=/opt/taskbox/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/tmp \
    TMPDIR=/tmp \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 65532:65532
WORKDIR /tmp
ENTRYPOINT ["taskbox"]
CMD ["--help"]
