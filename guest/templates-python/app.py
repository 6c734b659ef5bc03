"""list_templates and read_template in Python, against the infra `db`
interface: the same rules as the workspace tools' Rust (SPEC 4.1, 4.2),
answering the same JSON for the same rows."""

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import templates_tools as t
from wit_world.imports import db
from wit_world.imports.toolshed_infra_types import QueryError_NotFound
from wit_world.imports.toolshed_tools_types import ErrorCategory, ToolError

PAGE_SIZE = 10
SUMMARY_DESCRIPTION_CHARS = 200
PARAMETER_DESCRIPTION_CHARS = 300
RECOVERABLE = {ErrorCategory.FILE_NOT_FOUND, ErrorCategory.VALIDATION_FAILED, ErrorCategory.TIMEOUT,
               ErrorCategory.NETWORK_ERROR, ErrorCategory.RESOURCE_UNAVAILABLE, ErrorCategory.USER_CANCELLED}


def error(category, code, message, suggestions=None):
    """A tool error: recoverable follows the category, as toolshed-guest's."""
    return Err(ToolError(error=message, category=category, code=code, recoverable=category in RECOVERABLE,
                         suggestions=suggestions, build_id=None, template_id=None, detail=None,
                         validations=None, task_id=None))


def query(what, read):
    """`read()`, or the tool error for a failed database read."""
    try:
        return read()
    except Err as failed:
        if isinstance(failed.value, QueryError_NotFound):
            raise error(ErrorCategory.RESOURCE_UNAVAILABLE, "NOT_FOUND", f"{what}: not found")
        raise error(ErrorCategory.INTERNAL_ERROR, "DATABASE_ERROR", f"{what}: {failed.value.value}")


def non_empty(text):
    return text if text else None


def allowed(allowlist, template_id):
    return not allowlist or any(i.lower() == template_id.lower() for i in allowlist)


def is_uuid(text):
    groups = text.split("-")
    return len(groups) == 5 and all(
        len(g) == n and all(c in "0123456789abcdefABCDEF" for c in g) for g, n in zip(groups, [8, 4, 4, 4, 12]))


def template_not_found():
    return error(ErrorCategory.RESOURCE_UNAVAILABLE, "TEMPLATE_NOT_FOUND", "template not found",
                 ["Use list_templates to find the templates this chat can use."])


def rust_lower(text):
    # Rust's to_lowercase and Python's lower agree on what template names hold.
    return text.lower()


class TemplatesTools(exports.TemplatesTools):
    def list_templates(self, args: t.ListTemplatesArgs) -> t.ListTemplatesResult:
        chat = query("read chat", db.get_chat)
        allowlist = query("read template allowlist", db.get_template_allowlist)
        text = rust_lower(args.query or "")
        templates = [x for x in query("list templates", db.list_templates)
                     if not x.deleted and not x.deprecated and x.organization_id == chat.organization_id
                     and allowed(allowlist, x.id) and (not text or text in rust_lower(x.name))]
        # Names and ids compare by their UTF-8 bytes, as Rust's strings do.
        templates.sort(key=lambda x: (-x.active_developers, x.name.encode(), x.id.encode()))
        total_count = len(templates)
        total_pages = max(-(-total_count // PAGE_SIZE), 1)
        page = max(args.page if args.page is not None else 1, 1)
        items = [t.TemplateSummary(
            id=x.id, name=x.name, organization_id=x.organization_id, display_name=non_empty(x.display_name),
            description=non_empty(x.description[:SUMMARY_DESCRIPTION_CHARS]),
            active_developers=x.active_developers if x.active_developers > 0 else None,
        ) for x in templates[(page - 1) * PAGE_SIZE:][:PAGE_SIZE]]
        return t.ListTemplatesResult(templates=items, count=len(items), page=page, total_pages=total_pages,
                                     total_count=total_count)

    def read_template(self, args: t.ReadTemplateArgs) -> t.ReadTemplateResult:
        hint = ["Call list_templates and pass one of its ids as template_id."]
        if not args.template_id.strip():
            raise error(ErrorCategory.VALIDATION_FAILED, "TEMPLATE_ID_REQUIRED", "template_id is required", hint)
        if not is_uuid(args.template_id):
            raise error(ErrorCategory.VALIDATION_FAILED, "INVALID_TEMPLATE_ID",
                        f"invalid template_id {rust_debug(args.template_id)}: it must be a UUID such as the ids list_templates returns", hint)
        allowlist = query("read template allowlist", db.get_template_allowlist)
        if not allowed(allowlist, args.template_id):
            raise template_not_found()
        chat = query("read chat", db.get_chat)
        try:
            template = db.get_template(args.template_id)
        except Err as failed:
            if isinstance(failed.value, QueryError_NotFound):
                raise template_not_found()
            raise error(ErrorCategory.INTERNAL_ERROR, "DATABASE_ERROR", f"read template: {failed.value.value}")
        if template.organization_id != chat.organization_id or template.deleted:
            raise template_not_found()
        parameters = query("read template parameters", lambda: db.get_template_parameters(template.active_version_id))
        return t.ReadTemplateResult(
            template=t.TemplateDetail(id=template.id, name=template.name, active_version_id=template.active_version_id,
                                      display_name=non_empty(template.display_name),
                                      description=non_empty(template.description)),
            parameters=[parameter_info(p) for p in parameters],
        )


def parameter_info(p):
    options = [t.ParameterChoice(name=o.name, value=o.value, description=non_empty(o.description)) for o in p.options]
    return t.ParameterInfo(
        name=p.name, type=p.type, required=p.required, display_name=non_empty(p.display_name),
        description=non_empty(p.description[:PARAMETER_DESCRIPTION_CHARS]), default=p.default_value,
        mutable=True if p.mutable else None, ephemeral=True if p.ephemeral else None,
        form_type=non_empty(p.form_type), options=options or None,
        validation_regex=p.validation_regex or None, validation_min=p.validation_min, validation_max=p.validation_max,
    )


def rust_debug(text):
    """`text` quoted as Rust's `{:?}` quotes it, for the messages that echo it."""
    out = '"'
    for c in text:
        if c == '"' or c == '\\':
            out += '\\' + c
        elif c == '\n':
            out += '\\n'
        elif c == '\t':
            out += '\\t'
        elif c == '\r':
            out += '\\r'
        elif ord(c) < 0x20 or ord(c) == 0x7f:
            out += '\\u{%x}' % ord(c)
        else:
            out += c
    return out + '"'
