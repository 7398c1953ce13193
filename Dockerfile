# The otelcol-k8sevents image, for those who build images with Docker:
#
#   make build && docker build -t otelcol-k8sevents:0.1.0 .
#
# It holds what `make image` puts into _build/otelcol-k8sevents-image.tar
# without any container engine: the statically linked collector that
# `make build` writes, Debian's CA certificates, user 10001, the same
# entrypoint and arguments (e2e/manifests_test.go checks that they agree).
# Only that tarball is built and run by the tests; this file is not, as
# there is no Docker engine where they run.
FROM debian:12-slim AS certs
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*

FROM scratch
COPY --from=certs /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY _build/otelcol-k8sevents /otelcol-k8sevents
USER 10001:10001
ENTRYPOINT ["/otelcol-k8sevents"]
CMD ["--config", "/etc/otelcol-k8sevents/config.yaml"]
