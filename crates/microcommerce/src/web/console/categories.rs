//! The categories on the catalog's page: each with a form to rename it or describe it anew, and
//! a form for a new one. Their products follow a rename, since they refer to it by id.

use axum::extract::{Path, State};
use maud::{Markup, html};
use serde::Deserialize;

use super::product::{CATALOG, to_catalog};
use super::{ConsoleResult, Operator};
use crate::Error;
use crate::catalog::{self, CategoryInput, CategoryView};
use crate::ids::CategoryId;
use crate::state::AppState;
use crate::web::{Form, see_other};

/// The categories' panel of the catalog's page.
pub(super) fn category_panel(categories: &[CategoryView]) -> Markup {
    html! {
        section.panel #categories aria-labelledby="categories-title" {
            h2 #categories-title { "Categories" }
            ul.category-list {
                @for category in categories {
                    @let id = category.id;
                    li {
                        a href=(format!("{CATALOG}?category={id}")) { (category.name) }
                        @if !category.description.is_empty() {
                            span.hint { " · " (category.description) }
                        }
                        details {
                            summary { "Edit" span.visually-hidden { " " (category.name) } }
                            (category_form(&format!("{CATALOG}/categories/{id}"), &format!("category-{id}"),
                                ("Name", "Description"), Some(category), "Save category"))
                        }
                    }
                }
            }
            h3 { "New category" }
            (category_form(&format!("{CATALOG}/categories"), "new-category",
                ("Category name", "Category description"), None, "Create category"))
        }
    }
}

/// A category form posting to `action`, its field ids starting with `prefix`, labelled
/// `labels`, filled with `category`'s name and description if given.
fn category_form(
    action: &str,
    prefix: &str,
    labels: (&str, &str),
    category: Option<&CategoryView>,
    submit: &str,
) -> Markup {
    let (name, description) = category.map_or(("", ""), |category| {
        (category.name.as_str(), category.description.as_str())
    });
    html! {
        form.category-form method="post" action=(action) {
            div.field {
                label for=(format!("{prefix}-name")) { (labels.0) }
                input id=(format!("{prefix}-name")) name="name" required maxlength="200" value=(name);
            }
            div.field {
                label for=(format!("{prefix}-description")) { (labels.1) }
                input id=(format!("{prefix}-description")) name="description" maxlength="1000" value=(description);
            }
            button.button type="submit" { (submit) }
        }
    }
}

/// The category forms' fields.
#[derive(Debug, Default, Deserialize)]
pub(super) struct CategoryForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
}

impl From<CategoryForm> for CategoryInput {
    fn from(form: CategoryForm) -> Self {
        Self {
            name: form.name,
            description: Some(form.description),
        }
    }
}

/// `POST /admin/catalog/categories`: a new category, back to the catalog.
pub(super) async fn create_category(
    _: Operator,
    State(state): State<AppState>,
    Form(form): Form<CategoryForm>,
) -> ConsoleResult {
    catalog::create_category(&state, form.into())
        .await
        .map_err(to_catalog)?;
    Ok(see_other(&format!("{CATALOG}#categories")))
}

/// `POST /admin/catalog/categories/{id}`: a category renamed or described anew, back to the
/// catalog.
pub(super) async fn update_category(
    _: Operator,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Form(form): Form<CategoryForm>,
) -> ConsoleResult {
    let id: CategoryId = id
        .parse()
        .map_err(|_| to_catalog(Error::NotFound("category")))?;
    catalog::update_category(&state, id, form.into())
        .await
        .map_err(to_catalog)?;
    Ok(see_other(&format!("{CATALOG}#categories")))
}
