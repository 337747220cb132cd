# syntax=docker/dockerfile:1
#
# kubemesos images, built from the repository root:
#
#   docker build --build-arg VERSION=$(git describe --tags --always) --build-arg COMMIT=$(git rev-parse HEAD) \
#     --target kubemesos -t kubemesos/kubemesos:$VERSION .
#   docker build --build-arg VERSION=... --build-arg COMMIT=... --target mesos-sim -t kubemesos/mesos-sim:$VERSION .
#
# Reproducible: the Go toolchain and base images are pinned by build argument (pin them by digest in CI with
# --build-arg GO_IMAGE=golang@sha256:... and RUNTIME_IMAGE=...@sha256:...), the binaries are built with
# CGO_ENABLED=0, -trimpath, -buildvcs=false and an empty build ID, and only VERSION/COMMIT are stamped, so the
# same source and arguments give the same bytes. Set SOURCE_DATE_EPOCH for reproducible image timestamps.

ARG GO_IMAGE=golang:1.26.8-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/static-debian12:nonroot
ARG SIM_RUNTIME_IMAGE=gcr.io/distroless/static-debian12:debug-nonroot

# ---- build: one stage compiles both binaries (shared module and build cache) ----
FROM --platform=$BUILDPLATFORM ${GO_IMAGE} AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-mod=readonly
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
ARG TARGETOS
ARG TARGETARCH
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -buildvcs=false \
      -ldflags "-s -w -buildid= -X github.com/kubemesos/kubemesos/internal/version.Version=${VERSION} -X github.com/kubemesos/kubemesos/internal/version.Commit=${COMMIT}" \
      -o /out/kubemesos ./cmd/kubemesos && \
    GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -buildvcs=false \
      -ldflags "-s -w -buildid= -X github.com/kubemesos/kubemesos/internal/version.Version=${VERSION} -X github.com/kubemesos/kubemesos/internal/version.Commit=${COMMIT}" \
      -o /out/mesos-sim ./cmd/mesos-sim

# ---- mesos-sim: the simulated Mesos master + agents ----
# The agents run executors and pod containers as local processes, and an image's command (--image-command
# 'nginx=sleep 3600') needs a shell and coreutils, so this image is the distroless "debug" variant (busybox),
# still static and non-root.
FROM ${SIM_RUNTIME_IMAGE} AS mesos-sim
ARG VERSION=dev
LABEL org.opencontainers.image.title="mesos-sim" \
      org.opencontainers.image.description="Protocol-faithful Apache Mesos master and agent simulator" \
      org.opencontainers.image.source="https://github.com/kubemesos/kubemesos" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/mesos-sim /mesos-sim
ENV PATH=/busybox:/usr/local/bin:/usr/bin:/bin
WORKDIR /home/nonroot
USER 65532:65532
EXPOSE 5050
ENTRYPOINT ["/mesos-sim"]

# ---- kubemesos: framework, executor and `kubemesos version` in one binary (default target) ----
FROM ${RUNTIME_IMAGE} AS kubemesos
ARG VERSION=dev
LABEL org.opencontainers.image.title="kubemesos" \
      org.opencontainers.image.description="Runs Kubernetes pods as Apache Mesos tasks" \
      org.opencontainers.image.source="https://github.com/kubemesos/kubemesos" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/kubemesos /kubemesos
USER 65532:65532
EXPOSE 10260
ENTRYPOINT ["/kubemesos"]
CMD ["framework"]
