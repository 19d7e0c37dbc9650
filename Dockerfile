# Container image of vpc-mirror-controller: a static binary and the CA certificates in an empty
# image, running as the numeric non-root user 65532.
#
#   docker build -t vpc-mirror-controller:0.1.0 .
#
# The build stage links glibc statically (crt-static on x86_64-unknown-linux-gnu), so the final
# stage needs no C library. NOTE: this image has not been built or started yet, because no base
# image can be pulled where the project is developed. Host name lookups of a statically linked
# glibc depend on NSS modules that the scratch image lacks, so check that the controller
# resolves the AWS endpoints before relying on this image.

FROM rust:1.95-bookworm AS builder
WORKDIR /build
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# Cargo.toml declares the benchmark target, and cargo reads its file even for a plain build.
COPY benches ./benches
ENV RUSTFLAGS="-C target-feature=+crt-static"
RUN cargo build --release --locked --target x86_64-unknown-linux-gnu \
    && cp target/x86_64-unknown-linux-gnu/release/vpc-mirror-controller /vpc-mirror-controller

FROM scratch
# rustls reads the trusted roots from this file for the AWS endpoints; the Kubernetes client
# trusts the service account's ca.crt instead.
COPY --from=builder /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
COPY --from=builder /vpc-mirror-controller /vpc-mirror-controller
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/vpc-mirror-controller"]
CMD ["run"]
