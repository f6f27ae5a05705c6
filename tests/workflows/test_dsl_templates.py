"""`{{#node.var#}}` references: which selectors a template uses, and rendering through a lookup."""

import pytest

from workflows.dsl import render_template, template_selectors


def test_selectors_in_order_without_repeats():
    template = (
        "Hi {{#start.name#}}, re {{#1711528914102.text#}} and {{#start.name#}} {{#sys.query#}}"
    )
    assert template_selectors(template) == [
        ("start", "name"),
        ("1711528914102", "text"),
        ("sys", "query"),
    ]


def test_nested_attribute_selectors():
    assert template_selectors("{{#http.body.data.items#}}") == [("http", "body", "data", "items")]


@pytest.mark.parametrize(
    "template",
    [
        "{{#context#}}",  # the LLM node's context slot, not a variable
        "{{#$outputs.note#}}",  # a human-input form field
        "{{ start.name }}",  # Jinja2, not a reference
        "{#start.name#}",
        "{{#start.1name#}}",  # variable names start with a letter or _
        "{{#start.#}}",
        "{{#" + "n" * 51 + ".x#}}",  # node ids have at most 50 characters
    ],
)
def test_things_that_are_not_references(template):
    assert template_selectors(template) == []


def test_render_replaces_each_reference_through_the_lookup():
    values = {
        ("start", "name"): "Ada",
        ("llm", "text"): None,
        ("code", "result"): {"score": 0.9, "tags": ["a", "é"]},
        ("code", "count"): 3,
        ("code", "ok"): True,
        ("code", "items"): [1, 2],
    }
    seen = []

    def lookup(selector):
        seen.append(selector)
        return values.get(selector)

    rendered = render_template(
        "{{#start.name#}}|{{#llm.text#}}|{{#code.result#}}|{{#code.count#}}|{{#code.ok#}}|"
        "{{#code.items#}}|{{#context#}}|{{#ghost.x#}}",
        lookup,
    )
    assert rendered == ('Ada||{"score": 0.9, "tags": ["a", "é"]}|3|true|[1, 2]|{{#context#}}|')
    assert seen[-1] == ("ghost", "x")


def test_render_calls_the_lookup_once_per_occurrence_and_keeps_other_text():
    calls = []
    rendered = render_template(
        "a {{#n.v#}} b {{#n.v#}} {{ jinja }}", lambda s: calls.append(s) or "X"
    )
    assert rendered == "a X b X {{ jinja }}"
    assert calls == [("n", "v"), ("n", "v")]


def test_a_lookup_error_propagates():
    def lookup(selector):
        raise KeyError(selector)

    with pytest.raises(KeyError):
        render_template("{{#n.v#}}", lookup)
