use askama::Template;
use axum::response::Html;

use crate::HtmlError;

/// Renders a template into an HTML response; a template failure becomes the 500 page.
pub fn render<T: Template>(template: &T) -> Result<Html<String>, HtmlError> {
    template
        .render()
        .map(Html)
        .map_err(|e| HtmlError::internal(format!("template: {e}")))
}
