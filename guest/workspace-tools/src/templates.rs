//! `list_templates` and `read_template` (SPEC 4.1, 4.2).

use crate::capabilities::Capabilities;
use crate::errors::{error, is_uuid, query_failed};
use crate::wit::exports::toolshed::tools::workspace_tools::{
    ListTemplatesArgs, ListTemplatesResult, ParameterChoice, ParameterInfo, ReadTemplateArgs,
    ReadTemplateResult, TemplateDetail, TemplateSummary, ToolError,
};
use crate::wit::toolshed::infra::types::{QueryError, Template, TemplateParameter};
use toolshed_guest::types::ErrorCategory;

const PAGE_SIZE: usize = 10;
const SUMMARY_DESCRIPTION_CHARS: usize = 200;
const PARAMETER_DESCRIPTION_CHARS: usize = 300;

/// `text` cut to at most `max` characters, copied in one piece.
fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => text[..end].to_string(),
        None => text.to_string(),
    }
}

fn non_empty(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_string())
}

/// Whether the allowlist lets the chat use `template_id` (empty allows all).
pub fn allowed(allowlist: &[String], template_id: &str) -> bool {
    allowlist.is_empty() || allowlist.iter().any(|id| id.eq_ignore_ascii_case(template_id))
}

/// Lists the chat organization's usable templates, most used first, ten per page.
pub fn list_templates<C: Capabilities>(host: &C, args: ListTemplatesArgs) -> Result<ListTemplatesResult, ToolError> {
    let chat = host.chat().map_err(|e| query_failed("read chat", e))?;
    let allowlist = host.template_allowlist().map_err(|e| query_failed("read template allowlist", e))?;
    let query = args.query.unwrap_or_default().to_lowercase();
    // An empty query matches every name, so no name is lowercased for it.
    let matches = |name: &str| query.is_empty() || name.to_lowercase().contains(&query);
    let mut templates: Vec<Template> = host
        .templates()
        .map_err(|e| query_failed("list templates", e))?
        .into_iter()
        .filter(|t| !t.deleted && !t.deprecated)
        .filter(|t| t.organization_id == chat.organization_id)
        .filter(|t| allowed(&allowlist, &t.id))
        .filter(|t| matches(&t.name))
        .collect();
    // The id breaks every tie, so an unstable sort gives the one order.
    templates.sort_unstable_by(|a, b| {
        b.active_developers
            .cmp(&a.active_developers)
            .then_with(|| a.name.cmp(&b.name))
            .then_with(|| a.id.cmp(&b.id))
    });

    let total_count = templates.len();
    let total_pages = total_count.div_ceil(PAGE_SIZE).max(1);
    let page = args.page.unwrap_or(1).max(1) as usize;
    let page_items: Vec<TemplateSummary> = templates
        .into_iter()
        .skip((page - 1).saturating_mul(PAGE_SIZE))
        .take(PAGE_SIZE)
        .map(|t| TemplateSummary {
            display_name: non_empty(&t.display_name),
            description: non_empty(&cut(&t.description, SUMMARY_DESCRIPTION_CHARS)),
            active_developers: (t.active_developers > 0).then_some(t.active_developers),
            id: t.id,
            name: t.name,
            organization_id: t.organization_id,
        })
        .collect();
    Ok(ListTemplatesResult {
        count: page_items.len() as u32,
        templates: page_items,
        page: page as u32,
        total_pages: total_pages as u32,
        total_count: total_count as u32,
    })
}

fn template_not_found() -> ToolError {
    let mut err = error(ErrorCategory::ResourceUnavailable, "TEMPLATE_NOT_FOUND", "template not found");
    err.suggestions = Some(vec!["Use list_templates to find the templates this chat can use.".into()]);
    err
}

/// Checks a template id argument: present and a UUID.
pub fn check_template_id(template_id: &str, required_hint: &str) -> Result<(), ToolError> {
    if template_id.trim().is_empty() {
        let mut err = error(ErrorCategory::ValidationFailed, "TEMPLATE_ID_REQUIRED", format!("template_id is required{required_hint}"));
        err.suggestions = Some(vec!["Call list_templates and pass one of its ids as template_id.".into()]);
        return Err(err);
    }
    if !is_uuid(template_id) {
        let mut err = error(
            ErrorCategory::ValidationFailed,
            "INVALID_TEMPLATE_ID",
            format!("invalid template_id {template_id:?}: it must be a UUID such as the ids list_templates returns"),
        );
        err.suggestions = Some(vec!["Call list_templates and pass one of its ids as template_id.".into()]);
        return Err(err);
    }
    Ok(())
}

fn parameter_info(p: TemplateParameter) -> ParameterInfo {
    let options: Vec<ParameterChoice> = p
        .options
        .into_iter()
        .map(|o| ParameterChoice { name: o.name, value: o.value, description: non_empty(&o.description) })
        .collect();
    ParameterInfo {
        display_name: non_empty(&p.display_name),
        description: non_empty(&cut(&p.description, PARAMETER_DESCRIPTION_CHARS)),
        default: p.default_value,
        mutable: p.mutable.then_some(true),
        ephemeral: p.ephemeral.then_some(true),
        form_type: non_empty(&p.form_type),
        options: (!options.is_empty()).then_some(options),
        validation_regex: p.validation_regex.filter(|r| !r.is_empty()),
        validation_min: p.validation_min,
        validation_max: p.validation_max,
        name: p.name,
        type_: p.type_,
        required: p.required,
    }
}

/// Reads a template of the chat's organization and its active version's parameters.
pub fn read_template<C: Capabilities>(host: &C, args: ReadTemplateArgs) -> Result<ReadTemplateResult, ToolError> {
    check_template_id(&args.template_id, "")?;
    let allowlist = host.template_allowlist().map_err(|e| query_failed("read template allowlist", e))?;
    if !allowed(&allowlist, &args.template_id) {
        return Err(template_not_found());
    }
    let chat = host.chat().map_err(|e| query_failed("read chat", e))?;
    let template = match host.template(&args.template_id) {
        Ok(t) if t.organization_id == chat.organization_id && !t.deleted => t,
        Ok(_) | Err(QueryError::NotFound) => return Err(template_not_found()),
        Err(e) => return Err(query_failed("read template", e)),
    };
    let parameters = host
        .template_parameters(&template.active_version_id)
        .map_err(|e| query_failed("read template parameters", e))?
        .into_iter()
        .map(parameter_info)
        .collect();
    Ok(ReadTemplateResult {
        template: TemplateDetail {
            display_name: non_empty(&template.display_name),
            description: non_empty(&template.description),
            id: template.id,
            name: template.name,
            active_version_id: template.active_version_id,
        },
        parameters,
    })
}

#[cfg(test)]
mod tests {
    use super::cut;

    #[test]
    fn cut_counts_characters_not_bytes() {
        assert_eq!(cut("héllo wörld", 2), "hé");
        assert_eq!(cut("héllo", 5), "héllo");
        assert_eq!(cut("héllo", 50), "héllo");
        assert_eq!(cut("日本語のテキスト", 3), "日本語");
        assert_eq!(cut("", 0), "");
        assert_eq!(cut("abc", 0), "");
    }
}
