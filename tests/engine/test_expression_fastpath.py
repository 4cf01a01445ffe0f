"""Plain variable paths render without Jinja, exactly as Jinja would render them."""

from __future__ import annotations

from typing import Any

import pytest

from tiercel.engine.expressions import ExpressionError, Renderer, fastpath

CONTEXT: dict[str, Any] = {
    "inputs": {"name": "Ada", "count": 3, "ratio": 1.5, "flag": True, "none": None, "tags": ["a", "b"]},
    "outputs": {"t-1": {"value": "x"}, "loop": {"v 1": {"value": {"k": [1, 2]}}}},
    "taskrun": {"value": "v 1"},
}
TEMPLATES = [
    "{{ inputs.name }}",
    "Hello {{inputs.name}}, {{ inputs.count }} times",
    "{{ inputs.ratio }}/{{ inputs.flag }}/{{ inputs.none }}/{{ inputs.tags }}",
    "{{ outputs['t-1'].value }}",
    '{{ outputs["loop"]["v 1"].value }}',
    "{{ outputs.loop['v 1'].value.k[1] }}",
    "{{ inputs.tags[0] }}{{ inputs.tags[1] }}",
    "{{ outputs }}",
]


@pytest.mark.parametrize("template", TEMPLATES)
def test_fast_path_matches_jinja(template: str) -> None:
    fast = fastpath.render(template, CONTEXT)
    assert fast is not None
    # A trailing literal expression is not a plain path, so this one goes through Jinja.
    assert fast == Renderer().render(template + "{{ '' }}", CONTEXT)


@pytest.mark.parametrize(
    "template",
    [
        "{{ inputs.name | upper }}",
        "{{ inputs.count + 1 }}",
        "{% if inputs.flag %}y{% endif %}",
        "{{ inputs.missing }}",
        "{{ inputs.tags[5] }}",
        "{{- inputs.name -}}",
        "{{ inputs.name ?? 'x' }}",
    ],
)
def test_anything_else_goes_to_jinja(template: str) -> None:
    assert fastpath.render(template, CONTEXT) is None


def test_a_missing_path_still_gets_kestras_message() -> None:
    with pytest.raises(ExpressionError, match="Unable to find `missing`"):
        Renderer().render("{{ inputs.missing }}", CONTEXT)


def test_output_cap_applies_to_the_fast_path_too() -> None:
    with pytest.raises(ExpressionError):
        Renderer(max_output_chars=10).render("{{ inputs.name }}", {"inputs": {"name": "x" * 100}})
