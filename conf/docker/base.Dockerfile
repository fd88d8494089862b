# gitflock/base:bookworm from the stock Debian image, for machines that can pull from Docker Hub.
# The same image as scripts/build-base-image.sh builds from Debian packages with debootstrap:
# Debian bookworm with redis-server, git, ca-certificates, procps and tini, and /data owned by
# redis (the compose `redis` service's volume).
#
#   docker build -t gitflock/base:bookworm - < conf/docker/base.Dockerfile
#   # the nginx image of the compose profile `nginx`:
#   docker build --build-arg EXTRA_PACKAGES=nginx-light -t gitflock/nginx:bookworm - < conf/docker/base.Dockerfile
#
# (Given on stdin it has no build context: nothing of the repository, conf/docker/cluster.env
# included, is sent to the Docker engine.)
ARG DEBIAN_IMAGE=debian:bookworm-slim
FROM ${DEBIAN_IMAGE}
ARG EXTRA_PACKAGES=""
RUN set -eu; \
    export DEBIAN_FRONTEND=noninteractive; \
    apt-get update; \
    apt-get -y dist-upgrade; \
    apt-get install -y --no-install-recommends redis-server git ca-certificates procps tini ${EXTRA_PACKAGES}; \
    install -d -o redis -g redis -m 0750 /data; \
    apt-get clean; \
    rm -rf /var/lib/apt/lists/*
ENV LANG=C.UTF-8
CMD ["/bin/bash"]
