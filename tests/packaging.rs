//! What the image ships, read from the files that make it (no Docker engine here to build it):
//! a stripped binary with the OCR extractor, CA certificates for the S3 client's HTTPS, and
//! Tesseract with its English data.

fn file(name: &str) -> String {
    std::fs::read_to_string(format!("{}/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[test]
fn the_image_ships_the_stripped_dist_build_and_ca_certificates() {
    let manifest: toml::Table = file("Cargo.toml").parse().unwrap();
    let dist = &manifest["profile"]["dist"];
    assert_eq!(dist["inherits"].as_str(), Some("release"));
    assert_eq!(
        dist["strip"].as_bool(),
        Some(true),
        "the shipped binary is stripped"
    );
    assert_eq!(dist["debug"].as_bool(), Some(false));
    let dockerfile = file("Dockerfile");
    let build = dockerfile
        .lines()
        .find(|l| l.starts_with("RUN cargo build"))
        .expect("the image builds the binary");
    assert!(build.contains("--profile dist"), "{build}");
    assert!(dockerfile.contains("COPY --from=build /src/target/dist/librarian "));
    let runtime = dockerfile.rsplit("FROM debian").next().unwrap();
    assert!(
        runtime.contains("install -y --no-install-recommends ca-certificates"),
        "the runtime image can verify HTTPS endpoints"
    );
    assert!(
        dockerfile.contains("ARG FEATURES=\"ocr\"") && build.contains("--features \"$FEATURES\""),
        "the image reads text"
    );
    assert!(
        runtime.contains("libtesseract5 tesseract-ocr-eng"),
        "the runtime image has Tesseract and its English data"
    );
}
