# taskbox executor image "sqlite": the sqlite executor.
#
# Build context: made by `taskbox image build --variant VARIANT`: requirements.txt, the taskbox wheel in
# dist/, images/strip_venv.py, images/bin/ (flytekit's command names), images/sbom/ (the SBOM generator and
# its pinned requirements) and the host's CA bundle, which only the builder stage sees (pip inside the
# build goes through an HTTPS proxy on the test machines). Provenance build args (VERSION, REVISION,
# CREATED, SOURCE, LICENSES, BASE_DIGEST, BASE_DIGEST_TYPE, SOURCE_DATE_EPOCH) come from
# taskbox.images.provenance; SOURCE_DATE_EPOCH is the commit time, never the clock (docs/images.md).
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS builder
ARG EXTRAS=sqlite,s3,gcs,azure,run
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
# The SBOM generator (cyclonedx-bom, pinned) in a throwaway venv of its own: never in /opt/taskbox, never
# in the runtime image.
COPY sbom/requirements.txt sbom/
RUN python3 -m venv /build/sbom-venv \
    && /build/sbom-venv/bin/python -m pip install --no-cache-dir -r sbom/requirements.txt
COPY strip_venv.py ./
COPY dist/ dist/
RUN set -- dist/taskbox-*.whl \
    && /opt/taskbox/bin/python -m pip install --no-cache-dir "$1[${EXTRAS}]" \
    && /opt/taskbox/bin/python strip_venv.py /opt/taskbox \
    && /opt/taskbox/bin/python -c "import pyarrow.parquet, sqlglot, s3fs, gcsfs, adlfs" \
    && /opt/taskbox/bin/taskbox executors
# flytekit's and Flyte 2's command names (pyflyte-execute, pyflyte-fast-execute, a0), after pip: ours win.
COPY bin/ /opt/taskbox/bin/
# The SBOM of what ships (the stripped venv, the base's Debian packages: docs/images.md), made after the
# last change to /opt/taskbox. What the runtime gets is staged under /build/rootfs with every file time set
# to SOURCE_DATE_EPOCH (COPY --from keeps them; the runtime copies it onto / in one step, so no folder it
# creates or changes is stamped with the clock): the same commit gives the same layer (docs/images.md).
COPY sbom/make_sbom.py sbom/
ARG BASE_IMAGE
ARG BASE_DIGEST=
ARG VERSION=0.0.0
ARG REVISION=unknown
ARG SOURCE=https://github.com/taskbox/taskbox
ARG SOURCE_DATE_EPOCH=0
RUN /build/sbom-venv/bin/python sbom/make_sbom.py --venv /opt/taskbox \
        --output /build/rootfs/usr/share/taskbox/sbom.cdx.json \
        --name taskbox-sqlite --version "${VERSION}" --revision "${REVISION}" --source "${SOURCE}" \
        --base-name "${BASE_IMAGE}" --base-digest "${BASE_DIGEST}" \
    && mkdir -p /build/rootfs/opt && cp -a /opt/taskbox /build/rootfs/opt/ \
    && find /build/rootfs -exec touch --no-dereference --date="@${SOURCE_DATE_EPOCH}" {} +

FROM ${BASE_IMAGE}
ARG BASE_IMAGE
ARG BASE_DIGEST=
ARG BASE_DIGEST_TYPE=
ARG VERSION=0.0.0
ARG REVISION=unknown
ARG CREATED=1970-01-01T00:00:00Z
ARG SOURCE=https://github.com/taskbox/taskbox
ARG LICENSES=Apache-2.0
LABEL org.opencontainers.image.title="taskbox-sqlite" \
      org.opencontainers.image.description="taskbox sqlite executor: one query on a SQLite file from any URI, Parquet results" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.url="${SOURCE}" \
      org.opencontainers.image.documentation="${SOURCE}#readme" \
      org.opencontainers.image.vendor="taskbox" \
      org.opencontainers.image.licenses="${LICENSES}" \
      org.opencontainers.image.base.name="${BASE_IMAGE}" \
      org.opencontainers.image.base.digest="${BASE_DIGEST}" \
      dev.taskbox.base.digest-type="${BASE_DIGEST_TYPE}" \
      dev.taskbox.sbom="/usr/share/taskbox/sbom.cdx.json" \
      dev.taskbox.variant="sqlite"
# The runtime installs nothing: pip leaves the base interpreter too (its bytes stay in the parent layer).
# SOURCE_DATE_EPOCH: shadow's password-change date and the times of the files changed here are the commit's.
ARG SOURCE_DATE_EPOCH
RUN groupadd --system --gid 65532 taskbox \
    && useradd --system --no-log-init --uid 65532 --gid 65532 --home-dir /tmp --no-create-home \
        --shell /usr/sbin/nologin taskbox \
    && rm -rf /usr/local/bin/pip* /usr/local/lib/python3*/site-packages/pip /usr/local/lib/python3*/site-packages/pip-* \
    && for path in /etc /etc/passwd /etc/group /etc/shadow /etc/gshadow /etc/passwd- /etc/group- /etc/shadow- \
        /etc/gshadow- /usr/local/bin /usr/local/lib/python3*/site-packages; do \
        if [ -e "$path" ]; then touch --no-dereference --date="@${SOURCE_DATE_EPOCH:-0}" "$path"; fi; \
    done
# /opt/taskbox and /usr/share/taskbox/sbom.cdx.json
COPY --from=builder /build/rootfs/ /
ENV PATH=/opt/taskbox/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/tmp \
    TMPDIR=/tmp \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 65532:65532
WORKDIR /tmp
ENTRYPOINT ["taskbox"]
CMD ["--help"]
