# The gitflock image: the prebuilt release binaries (gitflock-node, the CLI gitflock, the
# dashboard gitflock-web) on the gitflock base image. It runs a node by default; the compose
# service `web` runs `gitflock-web` from it.
#
#   cargo build --release --bins -p gitflock-rpc -p gitflock-cli -p gitflock-web   # on Debian bookworm (the base's glibc)
#   scripts/build-base-image.sh                    # gitflock/base:bookworm from Debian packages
#   docker build -t gitflock/node:dev .            # or: docker-compose build
#
# With internet access the base can come from Docker Hub instead:
#   docker build -t gitflock/base:bookworm - < conf/docker/base.Dockerfile   # no context: no secret sent
# The build context is only the three binaries and conf/ (see .dockerignore).
ARG BASE=gitflock/base:bookworm
FROM ${BASE}
LABEL io.gitflock.image=node

# The daemon's user; its home is the data directory (git needs a HOME). PID 1 is tini when
# the base has it (reaps zombies, forwards signals), else a plain exec.
RUN set -eu; \
    groupadd --system gitflock; \
    useradd --system --gid gitflock --home-dir /var/lib/gitflock --no-create-home \
        --shell /usr/sbin/nologin --comment "gitflock node" gitflock; \
    install -d -o gitflock -g gitflock -m 0750 /var/lib/gitflock; \
    install -d -m 0755 /etc/gitflock; \
    if command -v tini >/dev/null; then \
        ln -s "$(command -v tini)" /usr/local/bin/gitflock-init; \
    else \
        printf '#!/bin/sh\n[ "$1" = -- ] && shift\nexec "$@"\n' >/usr/local/bin/gitflock-init; \
        chmod 0755 /usr/local/bin/gitflock-init; \
    fi

COPY target/release/gitflock-node target/release/gitflock target/release/gitflock-web /usr/local/bin/
# The commented example; every key can be overridden by GITFLOCK_<SECTION>_<KEY>.
COPY conf/gitflock.toml /etc/gitflock/gitflock.toml

ENV GITFLOCK_CONFIG=/etc/gitflock/gitflock.toml \
    GITFLOCK_NODE_DATA_DIR=/var/lib/gitflock \
    GITFLOCK_NODE_GRPC_LISTEN=0.0.0.0:6666
USER gitflock
WORKDIR /var/lib/gitflock
VOLUME ["/var/lib/gitflock"]
# 6666 gRPC, 9100 node metrics ([node] metrics_listen), 9418 git daemon ([mirror]
# serve_listen), 8080 the dashboard (gitflock-web, [web] listen); each only when configured.
EXPOSE 6666 9100 9418 8080
# SIGTERM: the node resigns mastership, hands its work back and exits 0 (give it ~20 s).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/gitflock-init", "--"]
CMD ["gitflock-node"]
