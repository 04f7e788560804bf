# A custom executor image: a third-party executor (entry point group `taskbox.executors`) on top of a
# taskbox image, made by `taskbox image build --executor PACKAGE_OR_PATH --tag T [--base VARIANT]`.
#
# The parent has no pip. The builder stage lends the parent's venv a pip (ensurepip) and installs the
# executor with `--prefix /opt/overlay`: only what the parent lacks lands there, and only that overlay
# is copied into the runtime stage, so the image adds the executor and its own dependencies, nothing else.
ARG PARENT=ghcr.io/taskbox/executor-base:0.1.0-py3.11

FROM ${PARENT} AS builder
ARG EXECUTOR
# The builder stage installs into the parent's venv, which belongs to root; the runtime stage is non-root.
# hadolint ignore=DL3002
USER 0:0
ENV PIP_CERT=/build/ca-certificates.crt \
    SSL_CERT_FILE=/build/ca-certificates.crt \
    PIP_NO_CACHE_DIR=1 \
    PIP_NO_COMPILE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_PROGRESS_BAR=off \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /build
COPY . .
RUN test -n "${EXECUTOR}" \
    && /opt/taskbox/bin/python -m ensurepip --default-pip \
    && mkdir -p /opt/overlay/bin /opt/overlay/lib \
    && /opt/taskbox/bin/python -m pip install --no-cache-dir --prefix /opt/overlay "${EXECUTOR}" \
    && /opt/taskbox/bin/python -m compileall -q -j 0 --invalidation-mode unchecked-hash /opt/overlay/lib

FROM ${PARENT}
COPY --from=builder /opt/overlay/lib/ /opt/taskbox/lib/
COPY --from=builder /opt/overlay/bin/ /opt/taskbox/bin/
USER 65532:65532
WORKDIR /tmp
ENTRYPOINT ["taskbox"]
CMD ["executors"]
