import pytest

from flows.templates import Placeholder, TemplateError, check_template, render


def test_render_is_strict():
    assert render("{{ item.a }}!", item={"a": 1}) == "1!"
    with pytest.raises(TemplateError):
        render("{{ item.b }}", item={"a": 1})


def test_loop_variables_are_not_unknown():
    check_template("{% for e in evidence %}{{ e.text }}{% endfor %}", [])


def test_syntax_error_reports_line():
    with pytest.raises(TemplateError, match="line 2"):
        check_template("ok\n{{ item.a ", [])


def test_upstream_by_index_is_checked():
    with pytest.raises(TemplateError, match="upstream.x"):
        check_template("{{ upstream['x'] }}", ["y"])


def test_sandbox_blocks_attribute_escapes():
    with pytest.raises(TemplateError):
        render("{{ item.__class__.__mro__ }}", item={})


def test_placeholder_absorbs_attribute_access():
    assert render("{{ upstream.a.b }}", upstream=Placeholder()) == "<upstream>"
