# The production image: a release build on Debian, run as an unprivileged user.
#   docker build -t librarian .        (or --build-arg FEATURES=ocr,zxing-cpp for the second
#                                        barcode engine too)
#   docker run -p 8080:8080 -v librarian-data:/data librarian
# Configure with LIBRARIAN_* variables (see config/env-only.env) or mount a file and set
# LIBRARIAN_CONFIG=/etc/librarian/librarian.toml.

FROM rust:1.95-bookworm AS build
# The `ocr` extractor links Tesseract, whose bindings are generated with libclang at build time.
# FEATURES=ocr,zxing-cpp adds zxing-cpp as a second barcode engine; its C++ is built with cmake.
ARG FEATURES="ocr"
RUN apt-get update \
    && apt-get install -y --no-install-recommends libtesseract-dev libclang-dev cmake \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The dist profile: the release build, stripped (no debug line tables of every dependency).
RUN cargo build --profile dist --locked --bin librarian --features "$FEATURES"

FROM debian:bookworm-slim
# CA certificates: the S3 client verifies HTTPS endpoints (AWS or any S3-compatible server)
# against the system's store, which the slim image leaves empty. Tesseract's library and its
# English traineddata for the `ocr` extractor (other languages: tesseract-ocr-<lang>).
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libtesseract5 tesseract-ocr-eng \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --system --uid 10001 --home-dir /data librarian \
    && mkdir -p /data && chown librarian /data
COPY --from=build /src/target/dist/librarian /usr/local/bin/librarian
USER librarian
WORKDIR /data
ENV LIBRARIAN_SERVER__BIND=0.0.0.0:8080 \
    LIBRARIAN_ACTORS__DISK__DIR=/data \
    LIBRARIAN_SERVER__ORPHANS_FILE=/data/orphans.jsonl \
    LIBRARIAN_AUTH__TOKEN_FILE=/data/tokens.json \
    LIBRARIAN_QUEUE__KIND=local \
    LIBRARIAN_QUEUE__FILE=/data/queue.redb
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["librarian", "health", "--url", "http://127.0.0.1:8080/healthz"]
ENTRYPOINT ["librarian"]
CMD ["serve", "--log-format", "json"]
