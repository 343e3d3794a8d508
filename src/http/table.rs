//! Every route the API has, as a template, with the methods it answers: the metrics name their
//! series by it, and a known path asked with another method is answered 405 with `Allow`
//! (an `OPTIONS` without CORS preflight headers, 204 with `Allow`).

/// (template, methods), the methods as `Allow` lists them.
pub const ROUTES: [(&str, &str); 20] = [
    ("/", "GET, HEAD"),
    ("/healthz", "GET, HEAD"),
    ("/readyz", "GET, HEAD"),
    ("/metrics", "GET, HEAD"),
    ("/openapi.json", "GET, HEAD"),
    ("/docs", "GET, HEAD"),
    ("/assets/app.js", "GET, HEAD"),
    ("/assets/app.css", "GET, HEAD"),
    ("/assets/docs.js", "GET, HEAD"),
    ("/assets/docs.css", "GET, HEAD"),
    ("/api/v1/submissions", "GET, HEAD, POST, PUT"),
    ("/api/v1/submissions/{id}", "GET, HEAD, PUT"),
    ("/api/v1/submissions/{id}/image", "GET, HEAD"),
    ("/api/v1/pipelines", "GET, HEAD"),
    ("/api/v1/pipelines/{name}", "GET, HEAD"),
    (
        "/api/v1/pipelines/{name}/submissions",
        "GET, HEAD, POST, PUT",
    ),
    ("/api/v1/pipelines/{name}/submissions/{id}", "PUT"),
    ("/api/v1/scan", "POST"),
    ("/api/v1/jobs/{id}", "GET, HEAD"),
    ("/api/v1/jobs/{id}/events", "GET, HEAD"),
];

/// The route a path belongs to, with its methods; `None` for a path the API does not have.
pub fn route_of(path: &str) -> Option<(&'static str, &'static str)> {
    let mut previous = "";
    let template: Vec<&str> = path
        .split('/')
        .map(|segment| {
            let mapped = if uuid::Uuid::parse_str(segment).is_ok() {
                "{id}"
            } else if previous == "pipelines" && !segment.is_empty() {
                "{name}"
            } else {
                segment
            };
            previous = segment;
            mapped
        })
        .collect();
    let template = template.join("/");
    ROUTES.into_iter().find(|(route, _)| *route == template)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_their_route_and_methods() {
        let id = "0191e3c2-0000-7000-8000-000000000000";
        assert_eq!(
            route_of(&format!("/api/v1/submissions/{id}")),
            Some(("/api/v1/submissions/{id}", "GET, HEAD, PUT"))
        );
        assert_eq!(
            route_of(&format!("/api/v1/pipelines/shop/submissions/{id}")).map(|r| r.1),
            Some("PUT")
        );
        assert_eq!(
            route_of(&format!("/api/v1/submissions/{id}/image")).map(|r| r.0),
            Some("/api/v1/submissions/{id}/image")
        );
        assert_eq!(
            route_of("/api/v1/pipelines/products/submissions").map(|r| r.0),
            Some("/api/v1/pipelines/{name}/submissions")
        );
        assert_eq!(route_of("/").map(|r| r.0), Some("/"));
        assert_eq!(route_of("/api/v1/submissions/not-an-id"), None);
        assert_eq!(route_of("/wp-admin"), None);
        assert_eq!(route_of("/wp-admin/setup.php"), None);
    }
}
