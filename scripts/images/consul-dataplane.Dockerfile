# hashicorp/consul-dataplane's image (Envoy's distroless image plus consul-dataplane),
# made on the base this project's images use, for the tests that run terraform's task
# definition with consul-dataplane and for the image-size comparison. Built by
# scripts/images.ts, which passes the base and the `envoy` and `dataplane` contexts.
ARG BASE
FROM ${BASE}
COPY --from=envoy /usr/local/bin/envoy /usr/local/bin/envoy
COPY --from=dataplane /consul-dataplane /usr/local/bin/consul-dataplane
USER 5995
ENTRYPOINT ["/usr/local/bin/consul-dataplane"]
