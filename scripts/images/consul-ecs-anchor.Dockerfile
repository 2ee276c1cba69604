# hashicorp/consul-ecs v0.10.0's image (its binary, go-discover's `discover` for cloud
# auto-join, iptables, /consul a volume of its user), made on the base this project's
# control-plane image uses, for the image-size comparison. The release image is Alpine
# with more packages (curl, gnupg, openssl, libcap, su-exec, iputils, gcompat); this one
# is the smaller of the two. Built by scripts/bench-image-pull.ts, which passes the base
# and the `anchor` context (consul-ecs and discover).
ARG BASE
FROM ${BASE}
COPY --from=anchor /consul-ecs /bin/consul-ecs
COPY --from=anchor /discover /bin/discover
COPY --from=anchor --chown=5996:5996 /consul/ /consul/
VOLUME ["/consul"]
ENV PATH=/bin/consul-inject:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
USER 5996
ENTRYPOINT ["/bin/consul-ecs"]
