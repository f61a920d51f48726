//! The stylesheet, the script and the pictures, compiled into the binary.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Where the stylesheet is served.
pub(crate) const CSS: &str = "/assets/app.css";
/// Where the console's additions to the stylesheet are served.
pub(crate) const CONSOLE_CSS: &str = "/assets/console.css";
/// Where the script is served.
pub(crate) const JS: &str = "/assets/app.js";
/// The shop's logo, also its icon.
pub(crate) const ICON: &str = "/assets/img/logo.svg";

/// Every asset: path under `/assets/`, media type, bytes.
const ASSETS: [(&str, &str, &[u8]); 13] = [
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("assets/app.css"),
    ),
    (
        "console.css",
        "text/css; charset=utf-8",
        include_bytes!("assets/console.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/app.js"),
    ),
    ("img/logo.svg", SVG, include_bytes!("assets/img/logo.svg")),
    (
        "img/product.svg",
        SVG,
        include_bytes!("assets/img/product.svg"),
    ),
    (
        "img/electronics.svg",
        SVG,
        include_bytes!("assets/img/electronics.svg"),
    ),
    ("img/home.svg", SVG, include_bytes!("assets/img/home.svg")),
    ("img/books.svg", SVG, include_bytes!("assets/img/books.svg")),
    (
        "img/clothing.svg",
        SVG,
        include_bytes!("assets/img/clothing.svg"),
    ),
    (
        "img/sports.svg",
        SVG,
        include_bytes!("assets/img/sports.svg"),
    ),
    ("img/toys.svg", SVG, include_bytes!("assets/img/toys.svg")),
    (
        "img/beauty.svg",
        SVG,
        include_bytes!("assets/img/beauty.svg"),
    ),
    (
        "img/office.svg",
        SVG,
        include_bytes!("assets/img/office.svg"),
    ),
];

const SVG: &str = "image/svg+xml";

/// The picture for products of `category`: one drawing per demo category, a parcel otherwise.
/// The catalog's own image URLs point at a host that does not exist.
pub(crate) fn picture_for(category: &str) -> &'static str {
    match category {
        "Electronics" => "/assets/img/electronics.svg",
        "Home & Kitchen" => "/assets/img/home.svg",
        "Books" => "/assets/img/books.svg",
        "Clothing" => "/assets/img/clothing.svg",
        "Sports & Outdoors" => "/assets/img/sports.svg",
        "Toys & Games" => "/assets/img/toys.svg",
        "Beauty & Health" => "/assets/img/beauty.svg",
        "Office" => "/assets/img/office.svg",
        _ => "/assets/img/product.svg",
    }
}

/// `GET /assets/{path}`: cached for a day by browsers; they change only with the binary.
pub(super) async fn serve(axum::extract::Path(path): axum::extract::Path<String>) -> Response {
    let Some((_, media_type, bytes)) = ASSETS.iter().find(|(name, _, _)| *name == path) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(media_type));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400"),
    );
    super::secure(headers);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_picture_and_link_names_a_shipped_asset() {
        let shipped = |url: &str| {
            let path = url.strip_prefix("/assets/").expect("under /assets");
            ASSETS.iter().any(|(name, _, _)| *name == path)
        };
        for category in [
            "Electronics",
            "Home & Kitchen",
            "Books",
            "Clothing",
            "Sports & Outdoors",
            "Toys & Games",
            "Beauty & Health",
            "Office",
            "Anything else",
        ] {
            assert!(shipped(picture_for(category)), "{category}");
        }
        for url in [CSS, JS, ICON] {
            assert!(shipped(url), "{url}");
        }
    }
}
