# The production image: a release build on Debian, run as an unprivileged user.
#   docker build -t librarian .
#   docker run -p 8080:8080 -v librarian-data:/data librarian
# Configure with LIBRARIAN_* variables (see config/env-only.env) or mount a file and set
# LIBRARIAN_CONFIG=/etc/librarian/librarian.toml.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin librarian

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --home-dir /data librarian \
    && mkdir -p /data && chown librarian /data
COPY --from=build /src/target/release/librarian /usr/local/bin/librarian
USER librarian
WORKDIR /data
ENV LIBRARIAN_SERVER__BIND=0.0.0.0:8080 \
    LIBRARIAN_ACTORS__DISK__DIR=/data
VOLUME ["/data"]
EXPOSE 8080
ENTRYPOINT ["librarian"]
CMD ["serve", "--log-format", "json"]
