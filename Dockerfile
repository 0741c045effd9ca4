# tenancy as a container image: a release build on the Rust image, copied onto a
# slim Debian of the same release (same glibc), run as an unprivileged user.
#     docker build -t tenancy .
#     docker run --rm -p 50051:50051 -e TENANCY_ADMIN_KEY=... tenancy
# build.rs compiles proto/ with the pure-Rust protox, so no protoc is needed.

FROM rust:1-bookworm AS builder
WORKDIR /src
COPY . .
RUN cargo build --release --locked \
    && install -m 0755 target/release/tenancy /usr/local/bin/tenancy

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --create-home \
        --home-dir /var/lib/tenancy --shell /usr/sbin/nologin tenancy
COPY --from=builder /usr/local/bin/tenancy /usr/local/bin/tenancy
USER tenancy:tenancy
# The default SQLite database (sqlite://data/tenancy.db) lands in /var/lib/tenancy/data.
WORKDIR /var/lib/tenancy
ENV TENANCY_LISTEN=0.0.0.0:50051
EXPOSE 50051
STOPSIGNAL SIGTERM
ENTRYPOINT ["tenancy"]
CMD ["serve"]
