"""The nodes that call a model or search knowledge — llm, question-classifier,
parameter-extractor, knowledge-retrieval — run in small graphs on real PostgreSQL, against the
fake LLM server (vendor wire) or the built-in offline model."""

from __future__ import annotations

import itertools
import json

import pytest

import workflows.nodes  # noqa: F401 - registers every node type
from knowledge import indexing, services
from knowledge.models import Chunk, Dataset, Document
from providers.models import Model, UsageEvent
from providers.runtime.types import ChatMessage
from tenants.context import tenant_context
from tests.providers import conftest as provider_fixtures
from workflows.dsl.nodes_model import ClassifierClass
from workflows.engine import NodeContext, NodeExecutor, NodeResult, register
from workflows.engine.events import NodeFinished, NodeRetry, TextChunk
from workflows.nodes.classifier import pick_class
from workflows.nodes.llm import ThinkFilter

from .conftest import make_edge, make_node
from .helpers import end, execute, finished, start

# Loopback allowed for the fake LLM, quick retries, fresh circuits; a credential maker.
runtime_state = provider_fixtures.runtime_state
credential = provider_fixtures.credential

FAKE_MODEL = {"provider": "openai", "name": "gpt-4o-mini", "mode": "chat", "completion_params": {}}
QUERY = [{"role": "user", "text": "{{#sys.query#}}"}]
OFFLINE_MODEL = {"provider": "offline", "name": "weft-offline-chat", "mode": "chat"}


@register
class Value(NodeExecutor):
    """Outputs its `value` data as `value` (a list context, jinja2 inputs …)."""

    types = ("t-model-value",)

    async def run(self, ctx: NodeContext) -> NodeResult:
        return NodeResult(outputs={"value": self.data.model_extra["value"]})


def llm(node_id: str = "llm", model: dict | None = None, **data) -> dict:
    fields = {
        "model": model or FAKE_MODEL,
        "prompt_template": [{"role": "user", "text": "{{#start.q#}}"}],
        "context": {"enabled": False, "variable_selector": []},
    }
    return make_node(node_id, "llm", **(fields | data))


def chain(*ids: str) -> list[dict]:
    return [make_edge(a, b) for a, b in itertools.pairwise(ids)]


def sent(fake_llm, index: int = -1) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in fake_llm.requests[index].json["messages"]]


@pytest.fixture
def fake(credential, fake_llm):
    credential()
    return fake_llm


# --- llm: the prompt ---------------------------------------------------------------------


@pytest.mark.django_db
def test_prompt_renders_references_jinja2_and_a_retrieval_context(tenant, fake):
    results = [
        {
            "content": "Wool comes from sheep.",
            "title": "wool",
            "metadata": {"_source": "knowledge"},
        },
        {"content": "Flax makes linen.", "title": "flax", "metadata": {"_source": "knowledge"}},
    ]
    nodes = [
        start("q"),
        make_node("kb", "t-model-value", value=results),
        make_node("words", "t-model-value", value=["warp", "weft"]),
        llm(
            prompt_template=[
                {"role": "system", "text": "Context:\n{{#context#}}"},
                {
                    "role": "user",
                    "edition_type": "jinja2",
                    "text": "",
                    "jinja2_text": "{% for w in words %}{{ w | upper }} {% endfor %}{{ q }}",
                },
                {"role": "assistant", "text": "   "},
                {"role": "user", "text": "Q: {{#start.q#}} ({{#sys.query#}})"},
            ],
            prompt_config={
                "jinja2_variables": [
                    {"variable": "words", "value_selector": ["words", "value"]},
                    {"variable": "q", "value_selector": ["start", "q"]},
                ]
            },
            context={"enabled": True, "variable_selector": ["kb", "value"]},
        ),
        end(answer=["llm", "text"]),
    ]
    run, events = execute(
        nodes, chain("start", "kb", "words", "llm", "end"), {"q": "fibres?"}, tenant=tenant
    )
    assert run.status == "succeeded", run.error
    expected = [
        ("system", "Context:\nWool comes from sheep.\nFlax makes linen."),
        ("user", "WARP WEFT fibres?"),
        ("user", "Q: fibres? (hello)"),  # the blank assistant message is left out
    ]
    assert sent(fake) == expected
    node = finished(events)["llm"]
    assert [(p["role"], p["text"]) for p in node.process_data["prompts"]] == expected
    assert node.process_data["model_name"] == "gpt-4o-mini"
    assert node.inputs["#context#"] == "Wool comes from sheep.\nFlax makes linen."
    assert node.outputs["text"] == f"You said: {expected[-1][1]}"


@pytest.mark.django_db
def test_retrieved_text_is_never_read_as_a_reference(tenant, fake):
    nodes = [
        start("q"),
        make_node("kb", "t-model-value", value="Secret is {{#start.q#}}"),
        llm(
            prompt_template=[{"role": "user", "text": "{{#context#}} / {{#start.q#}}"}],
            context={"enabled": True, "variable_selector": ["kb", "value"]},
        ),
    ]
    run, _ = execute(nodes, chain("start", "kb", "llm"), {"q": "x"}, tenant=tenant)
    assert run.status == "succeeded", run.error
    assert sent(fake) == [("user", "Secret is {{#start.q#}} / x")]


@pytest.mark.django_db
def test_a_broken_jinja2_prompt_fails_the_node_clearly(tenant, fake):
    nodes = [
        start("q"),
        llm(
            prompt_template=[{"role": "user", "edition_type": "jinja2", "jinja2_text": "{% if %}"}]
        ),
    ]
    _run, events = execute(nodes, chain("start", "llm"), {"q": "x"}, tenant=tenant)
    node = finished(events)["llm"]
    assert node.status == "failed" and node.error_type == "TemplateError"
    assert node.error.startswith("Jinja2 prompt:")
    assert fake.requests == []


@pytest.mark.django_db
def test_jinja2_prompts_run_in_the_sandbox(tenant, fake):
    template = "{{ ''.__class__.__mro__[1].__subclasses__() }}"
    nodes = [
        start("q"),
        llm(prompt_template=[{"role": "user", "edition_type": "jinja2", "jinja2_text": template}]),
    ]
    _, events = execute(nodes, chain("start", "llm"), {"q": "x"}, tenant=tenant)
    node = finished(events)["llm"]
    assert node.status == "failed" and node.error_type == "TemplateError"
    assert "unsafe" in node.error


@pytest.mark.django_db
def test_memory_puts_the_history_then_the_query_after_the_prompt(tenant, fake):
    asked = []

    async def memory(window_size):
        asked.append(window_size)
        return [ChatMessage("user", "Earlier question"), ChatMessage("assistant", "Earlier answer")]

    nodes = [
        start(),
        llm(
            prompt_template=[{"role": "system", "text": "Be brief."}],
            memory={
                "window": {"enabled": True, "size": 6},
                "query_prompt_template": "{{#sys.query#}}, please",
            },
        ),
        make_node("answer", "answer", answer="{{#llm.text#}}"),
    ]
    run, _ = execute(
        nodes,
        chain("start", "llm", "answer"),
        mode="advanced-chat",
        tenant=tenant,
        services={"memory": memory},
    )
    assert run.status == "succeeded", run.error
    assert asked == [6]
    assert sent(fake) == [
        ("system", "Be brief."),
        ("user", "Earlier question"),
        ("assistant", "Earlier answer"),
        ("user", "hello, please"),
    ]


@pytest.mark.django_db
def test_without_a_memory_service_only_the_query_follows(tenant, fake):
    nodes = [
        start(),
        llm(prompt_template=[{"role": "system", "text": "Be brief."}], memory={"window": {}}),
    ]
    run, _ = execute(nodes, chain("start", "llm"), mode="advanced-chat", tenant=tenant)
    assert run.status == "succeeded", run.error
    assert sent(fake) == [("system", "Be brief."), ("user", "hello")]


@pytest.mark.django_db
def test_completion_prompt_takes_the_history_where_it_says(tenant, fake):
    async def memory(window_size):
        assert window_size is None  # the window is off: all the history the app keeps
        return [ChatMessage("user", "hi"), ChatMessage("assistant", "hey")]

    nodes = [
        start(),
        llm(
            model=FAKE_MODEL | {"mode": "completion"},
            prompt_template={"text": "Chat:\n{{#histories#}}\nU: {{#sys.query#}}\nA:"},
            memory={"role_prefix": {"user": "U", "assistant": "A"}, "window": {"enabled": False}},
        ),
    ]
    run, events = execute(
        nodes,
        chain("start", "llm"),
        mode="advanced-chat",
        tenant=tenant,
        services={"memory": memory},
    )
    assert run.status == "succeeded", run.error
    assert sent(fake) == [("user", "Chat:\nU: hi\nA: hey\nU: hello\nA:")]
    assert finished(events)["llm"].process_data["model_mode"] == "completion"


@pytest.mark.django_db
def test_completion_params_are_passed_on(tenant, fake):
    params = {"temperature": 0.2, "max_tokens": 3, "stop": ["END"], "top_p": 0.5}
    nodes = [start("q"), llm(model=FAKE_MODEL | {"completion_params": params})]
    _, events = execute(
        nodes, chain("start", "llm"), {"q": "one two three four five"}, tenant=tenant
    )
    body = fake.last_request.json
    assert (body["temperature"], body["max_tokens"], body["stop"]) == (0.2, 3, ["END"])
    node = finished(events)["llm"]
    assert node.outputs["finish_reason"] == "length"
    assert node.outputs["text"] == "You said: one"


# --- llm: streaming, usage, errors -------------------------------------------------------


@pytest.mark.django_db
def test_text_streams_to_the_answer_before_the_node_finishes(tenant, fake):
    fake.script("alpha beta gamma delta")
    nodes = [
        start(),
        llm(prompt_template=QUERY),
        make_node("answer", "answer", answer="Say: {{#llm.text#}}!"),
    ]
    run, events = execute(
        nodes, chain("start", "llm", "answer"), mode="advanced-chat", tenant=tenant
    )
    assert run.status == "succeeded", run.error
    llm_done = next(
        i for i, e in enumerate(events) if isinstance(e, NodeFinished) and e.node_id == "llm"
    )
    before = [e for e in events[:llm_done] if isinstance(e, TextChunk)]
    assert "".join(e.text for e in before) == "Say: alpha beta gamma delta"
    assert len(before) >= 5  # "Say: " and one piece per word, not one block at the end
    assert before[1].from_variable_selector == ["llm", "text"]
    after = [e.text for e in events[llm_done:] if isinstance(e, TextChunk)]
    assert after == ["!"]
    assert run.outputs == {"answer": "Say: alpha beta gamma delta!"}


@pytest.mark.django_db
def test_usage_tokens_and_price_reach_the_node_and_the_run(tenant, fake):
    nodes = [start("q"), llm(), end(answer=["llm", "text"])]
    run, events = execute(
        nodes, chain("start", "llm", "end"), {"q": "weave me a scarf"}, tenant=tenant
    )
    node = finished(events)["llm"]
    usage = node.outputs["usage"]
    # The fake counts words: 4 prompt words, and "You said: weave me a scarf" is 6.
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (4, 6, 10)
    price = Model.catalog.get(name="gpt-4o-mini").cost(4, 6)
    assert price > 0
    assert (node.total_tokens, node.total_price, node.currency) == (10, price, "USD")
    assert (usage["total_price"], usage["currency"]) == (str(price), "USD")
    assert node.payload()["execution_metadata"] == {
        "total_tokens": 10,
        "total_price": str(price),
        "currency": "USD",
    }
    assert (run.tokens, run.price) == (10, price)
    # What a NodeExecution row stores must be plain JSON.
    json.dumps([node.inputs, node.outputs, node.process_data])
    (row,) = UsageEvent.dangerously_unscoped.filter(tenant=tenant)
    assert row.cost == price and str(row.workflow_run_id) == run.context.run_id


@pytest.mark.django_db
def test_provider_error_fails_the_node_with_the_providers_code(tenant, credential, fake_llm):
    credential(secret="sk-wrong-1111111111111111abcd")
    nodes = [start("q"), llm(), end(answer=["llm", "text"])]
    run, events = execute(nodes, chain("start", "llm", "end"), {"q": "x"}, tenant=tenant)
    node = finished(events)["llm"]
    assert node.status == "failed" and node.error_type == "provider_auth_failed"
    assert "Incorrect API key" in node.error
    assert run.status == "failed" and "end" not in finished(events)


@pytest.mark.django_db
def test_provider_error_is_retried_by_the_nodes_retry_config(tenant, fake):
    fake.fail_next(503, times=3)  # the runtime's own three attempts all fail
    nodes = [
        start("q"),
        llm(retry_config={"retry_enabled": True, "max_retries": 1, "retry_interval": 10}),
        end(answer=["llm", "text"]),
    ]
    run, events = execute(nodes, chain("start", "llm", "end"), {"q": "x"}, tenant=tenant)
    (retry,) = [e for e in events if isinstance(e, NodeRetry)]
    assert retry.error_type == "provider_unavailable"
    assert finished(events)["llm"].status == "succeeded"
    assert run.outputs == {"answer": "You said: x"}


@pytest.mark.django_db
def test_provider_error_takes_the_fail_branch(tenant, credential, fake_llm):
    credential(secret="sk-wrong-1111111111111111abcd")
    nodes = [
        start("q"),
        llm(error_strategy="fail-branch"),
        end(error=["llm", "error_type"]),
    ]
    run, _ = execute(
        nodes,
        [make_edge("start", "llm"), make_edge("llm", "end", "fail-branch")],
        {"q": "x"},
        tenant=tenant,
    )
    assert run.status == "partial-succeeded"
    assert run.outputs == {"error": "provider_auth_failed"}


@pytest.mark.django_db
def test_a_model_the_tenant_lacks_falls_back_to_its_default(tenant):
    nodes = [
        start("q"),
        make_node("kb", "t-model-value", value="Weft stores vectors in PostgreSQL with pgvector."),
        llm(
            model={"provider": "langgenius/openai/openai", "name": "gpt-4o", "mode": "chat"},
            prompt_template=[
                {"role": "system", "text": "<context>{{#context#}}</context>"},
                {"role": "user", "text": "{{#start.q#}}"},
            ],
            context={"enabled": True, "variable_selector": ["kb", "value"]},
        ),
    ]
    run, events = execute(
        nodes, chain("start", "kb", "llm"), {"q": "Where are vectors stored?"}, tenant=tenant
    )
    assert run.status == "succeeded", run.error
    node = finished(events)["llm"]
    assert node.outputs["text"] == "Weft stores vectors in PostgreSQL with pgvector."
    assert node.process_data["model_name"] == "weft-offline-chat"
    replaced = node.process_data["model_replaced"]
    assert (replaced["provider"], replaced["name"]) == ("langgenius/openai/openai", "gpt-4o")
    assert "not set up in this tenant" in replaced["reason"]


# --- llm: reasoning and structured output ------------------------------------------------


@pytest.mark.django_db
def test_separated_reasoning_is_kept_out_of_the_text_and_the_stream(tenant, fake):
    fake.script("<think>Plan the answer first.</think>\n\nThe weft crosses the warp.")
    nodes = [
        start(),
        llm(prompt_template=QUERY, reasoning_format="separated"),
        make_node("answer", "answer", answer="{{#llm.text#}}"),
    ]
    run, events = execute(
        nodes, chain("start", "llm", "answer"), mode="advanced-chat", tenant=tenant
    )
    node = finished(events)["llm"]
    assert node.outputs["text"] == "The weft crosses the warp."
    assert node.outputs["reasoning_content"] == "Plan the answer first."
    streamed = "".join(e.text for e in events if isinstance(e, TextChunk))
    assert streamed == "The weft crosses the warp."
    assert run.outputs == {"answer": "The weft crosses the warp."}


@pytest.mark.django_db
def test_tagged_reasoning_stays_in_the_text(tenant, fake):
    fake.script("<think>Plan.</think> Done.")
    nodes = [start("q"), llm(reasoning_format="tagged")]
    _, events = execute(nodes, chain("start", "llm"), {"q": "x"}, tenant=tenant)
    outputs = finished(events)["llm"].outputs
    assert (outputs["text"], outputs["reasoning_content"]) == ("<think>Plan.</think> Done.", "")


def test_think_filter_holds_a_tag_split_across_pieces():
    thinking = ThinkFilter()
    pieces = ["Hi <th", "ink>se", "cret</thi", "nk> there <b>", "old"]
    shown = "".join(thinking.feed(p) for p in pieces) + thinking.flush()
    assert shown == "Hi  there <b>old"
    assert (thinking.text, thinking.reasoning) == ("Hi  there <b>old", "secret")


SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
    "required": ["city", "days"],
}


def structured(**data) -> dict:
    return llm(structured_output_enabled=True, structured_output={"schema": SCHEMA}, **data)


@pytest.mark.django_db
def test_structured_output_follows_the_schema(tenant, fake):
    fake.script(json_output={"city": "Lyon", "days": 3})
    nodes = [start("q"), structured(), make_node("answer", "answer", answer="{{#llm.text#}}")]
    run, events = execute(
        nodes,
        chain("start", "llm", "answer"),
        {"q": "3 days in Lyon"},
        mode="advanced-chat",
        tenant=tenant,
    )
    assert run.status == "succeeded", run.error
    node = finished(events)["llm"]
    assert node.outputs["structured_output"] == {"city": "Lyon", "days": 3}
    assert json.loads(node.outputs["text"]) == {"city": "Lyon", "days": 3}
    asked = fake.last_request.json["response_format"]
    assert asked["type"] == "json_schema" and asked["json_schema"]["schema"] == SCHEMA
    # Not streamed piece by piece (a repair would replace it): the answer sends it whole.
    assert [e.text for e in events if isinstance(e, TextChunk)] == [node.outputs["text"]]


@pytest.mark.django_db
def test_structured_output_is_repaired_once_with_the_error(tenant, fake):
    fake.script(json_output={"city": "Lyon", "days": 0})
    fake.script(json_output={"city": "Lyon", "days": 2})
    nodes = [start("q"), structured()]
    run, events = execute(nodes, chain("start", "llm"), {"q": "Lyon"}, tenant=tenant)
    assert run.status == "succeeded", run.error
    node = finished(events)["llm"]
    assert node.outputs["structured_output"] == {"city": "Lyon", "days": 2}
    assert len(fake.requests) == 2
    repair = sent(fake)[-1][1]
    assert "at days: 0 is less than the minimum of 1" in repair
    assert node.process_data["structured_output_repaired"].startswith("at days:")
    first, second = (r.json for r in fake.requests)
    assert node.total_tokens == node.outputs["usage"]["total_tokens"] > 0
    assert len(second["messages"]) == len(first["messages"]) + 2


@pytest.mark.django_db
def test_structured_output_still_wrong_after_the_repair_fails_clearly(tenant, fake):
    fake.script("not json at all", times=2)
    nodes = [start("q"), structured()]
    run, events = execute(nodes, chain("start", "llm"), {"q": "Lyon"}, tenant=tenant)
    node = finished(events)["llm"]
    assert node.status == "failed" and node.error_type == "StructuredOutputInvalid"
    assert "even after one repair attempt: the answer is not JSON" in node.error
    assert len(fake.requests) == 2 and run.status == "failed"


@pytest.mark.django_db
def test_structured_output_without_json_schema_support_asks_in_the_prompt(
    tenant, credential, fake_llm
):
    credential()
    with tenant_context(tenant):
        Model.objects.filter(name="gpt-4o-mini").update(supports_json_schema=False)
    fake_llm.script(json_output={"city": "Oslo", "days": 1})
    _, events = execute(
        [start("q"), structured()], chain("start", "llm"), {"q": "x"}, tenant=tenant
    )
    assert finished(events)["llm"].outputs["structured_output"] == {"city": "Oslo", "days": 1}
    body = fake_llm.last_request.json
    assert body["response_format"] == {"type": "json_object"}
    assert (
        body["messages"][0]["role"] == "system" and '"minimum": 1' in body["messages"][0]["content"]
    )


# --- question-classifier ------------------------------------------------------------------

CLASSES = [
    {"id": "c-ship", "name": "Shipping"},
    {"id": "c-bill", "name": "Billing"},
    {"id": "c-other", "name": "Other"},
]


def classify(fake_llm, tenant, answer=None, json_output=None, **data):
    fake_llm.script(answer, json_output=json_output)
    nodes = [
        start("q"),
        make_node(
            "qc",
            "question-classifier",
            model=FAKE_MODEL,
            query_variable_selector=["start", "q"],
            classes=CLASSES,
            instruction="Invoices count as {{#start.q#}}",
            **data,
        ),
        *[end(**{c["id"]: ["qc", "class_name"]}) | {"id": c["id"]} for c in CLASSES],
    ]
    edges = [make_edge("start", "qc")] + [make_edge("qc", c["id"], c["id"]) for c in CLASSES]
    return execute(nodes, edges, {"q": "Where is my invoice?"}, tenant=tenant)


@pytest.mark.django_db
def test_classifier_takes_the_branch_of_the_class_the_model_names(tenant, fake):
    run, events = classify(
        fake, tenant, json_output={"category_id": "c-bill", "category_name": "Billing"}
    )
    assert run.status == "succeeded", run.error
    node = finished(events)["qc"]
    assert node.outputs["class_id"] == "c-bill" and node.outputs["class_name"] == "Billing"
    assert run.outputs == {"c-bill": "Billing"}
    assert set(finished(events)) == {"start", "qc", "c-bill"}
    assert node.process_data["matched_by"] == "json id"
    assert node.total_tokens == node.outputs["usage"]["total_tokens"] > 0 and node.total_price > 0
    body = fake.last_request.json
    enum = body["response_format"]["json_schema"]["schema"]["properties"]["category_id"]["enum"]
    assert enum == ["c-ship", "c-bill", "c-other"]
    request = json.loads(body["messages"][-1]["content"])
    assert request["input_text"] == "Where is my invoice?"
    assert request["classification_instructions"] == "Invoices count as Where is my invoice?"


@pytest.mark.django_db
def test_classifier_reads_a_class_named_in_plain_text(tenant, fake):
    run, events = classify(fake, tenant, answer="I would say this is about **shipping**.")
    assert run.outputs == {"c-ship": "Shipping"}
    assert finished(events)["qc"].process_data["matched_by"] == "mention"


@pytest.mark.django_db
def test_classifier_falls_back_to_the_first_class_and_says_so(tenant, fake):
    run, events = classify(fake, tenant, answer="No idea, sorry.")
    assert run.outputs == {"c-ship": "Shipping"}
    process = finished(events)["qc"].process_data
    assert process["matched_by"] == "fallback" and "first class" in process["note"]


@pytest.mark.parametrize(
    ("answer", "expected", "how"),
    [
        ('```json\n{"category_id": "c2", "category_name": "x"}\n```', "c2", "json id"),
        ('{"category_name": "returns"}', "c3", "json name"),
        ('{"keywords": ["late"], "categories": ["Billing"]}', "c2", "json name"),
        ("Returns.", "c3", "text"),
        ("c1", "c1", "text"),
        ("Not billing: it is Returns", "c2", "mention"),
        ('{"category_id": "nope"}', "c1", "fallback"),
    ],
)
def test_pick_class_reads_many_answer_shapes(answer, expected, how):
    classes = [
        ClassifierClass(id="c1", name="Shipping"),
        ClassifierClass(id="c2", name="Billing"),
        ClassifierClass(id="c3", name="Returns"),
    ]
    chosen, found_by = pick_class(answer, classes)
    assert (chosen.id, found_by) == (expected, how)


# --- parameter-extractor ------------------------------------------------------------------

PARAMETERS = [
    {"name": "city", "type": "string", "description": "The city", "required": True},
    {"name": "nights", "type": "number", "required": True},
    {"name": "budget", "type": "number"},
    {"name": "pets", "type": "bool"},
    {"name": "room", "type": "select", "options": ["Single", "Double"]},
    {"name": "extras", "type": "array[string]"},
    {"name": "ages", "type": "array[number]"},
]


def extract(fake_llm, tenant, answer=None, json_output=None, **data):
    fake_llm.script(answer, json_output=json_output)
    node = make_node(
        "pe",
        "parameter-extractor",
        model=FAKE_MODEL,
        query=["start", "q"],
        parameters=PARAMETERS,
        instruction="Dates are European.",
        **data,
    )
    run, events = execute(
        [start("q"), node], chain("start", "pe"), {"q": "Two nights in Rome"}, tenant=tenant
    )
    assert run.status == "succeeded", run.error
    return finished(events)["pe"]


@pytest.mark.django_db
def test_extractor_checks_types_and_converts_text_numbers(tenant, fake):
    answer = {
        "city": "Rome",
        "nights": "2",
        "budget": "350.5",
        "pets": "true",
        "room": "double",
        "extras": ["breakfast"],
        "ages": ["34", 36],
    }
    node = extract(fake, tenant, json_output=answer)
    outputs = node.outputs
    assert (outputs["__is_success"], outputs["__reason"]) == (1, None)
    assert {p["name"]: outputs[p["name"]] for p in PARAMETERS} == {
        "city": "Rome",
        "nights": 2,
        "budget": 350.5,
        "pets": True,
        "room": "Double",
        "extras": ["breakfast"],
        "ages": [34, 36],
    }
    assert outputs["__usage"]["total_tokens"] == node.total_tokens > 0
    body = fake.last_request.json
    schema = body["response_format"]["json_schema"]["schema"]
    assert schema["required"] == ["city", "nights"]
    assert schema["properties"]["room"] == {"type": "string", "enum": ["Single", "Double"]}
    assert schema["properties"]["ages"] == {"type": "array", "items": {"type": "number"}}
    assert schema["properties"]["pets"] == {"type": "boolean"}
    assert "Dates are European." in body["messages"][0]["content"]
    assert body["messages"][-1] == {"role": "user", "content": "Two nights in Rome"}


@pytest.mark.django_db
def test_extractor_missing_required_is_a_reason_not_a_failure(tenant, fake):
    node = extract(fake, tenant, json_output={"nights": 2})
    assert node.status == "succeeded"
    outputs = node.outputs
    assert (outputs["__is_success"], outputs["__reason"]) == (0, "Parameter city is required.")
    assert (outputs["city"], outputs["nights"], outputs["pets"], outputs["extras"]) == (
        "",
        2,
        False,
        [],
    )


@pytest.mark.django_db
def test_extractor_reports_a_value_of_the_wrong_type(tenant, fake):
    node = extract(fake, tenant, json_output={"city": "Rome", "nights": "two", "room": "Suite"})
    outputs = node.outputs
    assert outputs["__is_success"] == 0
    assert outputs["__reason"] == "Parameter nights: expected a number."
    assert (outputs["nights"], outputs["room"]) == (0, "")


@pytest.mark.django_db
def test_extractor_prompt_mode_reads_json_from_the_text(tenant, fake):
    answer = 'Sure!\n```json\n{"city": "Rome", "nights": 2.0}\n```'
    node = extract(fake, tenant, answer=answer, reasoning_mode="prompt")
    assert "response_format" not in fake.last_request.json
    assert (node.outputs["city"], node.outputs["nights"], node.outputs["__is_success"]) == (
        "Rome",
        2.0,
        1,
    )
    assert node.process_data["llm_text"] == answer


@pytest.mark.django_db
def test_extractor_without_json_in_the_answer_is_not_a_success(tenant, fake):
    node = extract(fake, tenant, answer="I cannot help with that.", reasoning_mode="prompt")
    assert node.outputs["__is_success"] == 0
    assert "no JSON" in node.outputs["__reason"]


# --- knowledge-retrieval ------------------------------------------------------------------

TEXTS = {
    "wool": "Wool is a protein fibre shorn from sheep; it keeps you warm even when wet.",
    "cotton": "Cotton is a cellulose fibre grown in warm climates and spun into yarn.",
    "dye": "Indigo dye gives denim its blue colour, and madder root gives a red one.",
}


def make_dataset(tenant, name="Textiles", texts=TEXTS, authors=None):
    dataset = services.dataset_create(tenant=tenant, name=name)
    for key, text in texts.items():
        document = services.document_create(dataset=dataset, name=f"{key}.txt", text=text)
        with tenant_context(tenant):
            assert indexing.index_document(document_id=document.pk) == "completed"
        if authors:
            Document.dangerously_unscoped.filter(pk=document.pk).update(
                doc_metadata={"author": authors[key]}
            )
    return Dataset.dangerously_unscoped.get(pk=dataset.pk)


def retrieval(dataset_ids, **data) -> dict:
    return make_node(
        "kr",
        "knowledge-retrieval",
        query_variable_selector=["start", "q"],
        **{
            "dataset_ids": [str(i) for i in dataset_ids],
            "retrieval_mode": "multiple",
            "multiple_retrieval_config": {"top_k": 3, "reranking_enable": False},
        }
        | data,
    )


def search(tenant, node, query):
    run, events = execute([start("q"), node], chain("start", "kr"), {"q": query}, tenant=tenant)
    assert run.status == "succeeded", run.error
    return finished(events)["kr"]


@pytest.mark.django_db
def test_retrieval_gives_dify_shaped_items(tenant):
    dataset = make_dataset(tenant)
    node = search(tenant, retrieval([dataset.pk]), "which fibre comes from sheep wool")
    result = node.outputs["result"]
    top = result[0]
    chunk = Chunk.dangerously_unscoped.get(content=TEXTS["wool"])
    assert top["content"] == TEXTS["wool"] and top["title"] == "wool.txt"
    meta = top["metadata"]
    assert {k: meta[k] for k in ("_source", "position", "dataset_id", "dataset_name")} == {
        "_source": "knowledge",
        "position": 1,
        "dataset_id": str(dataset.pk),
        "dataset_name": "Textiles",
    }
    assert (meta["document_id"], meta["document_name"]) == (str(chunk.document_id), "wool.txt")
    assert (meta["segment_id"], meta["segment_index_node_hash"]) == (
        str(chunk.pk),
        chunk.content_hash,
    )
    assert meta["retriever_from"] == "workflow" and meta["data_source_type"] == "text"
    assert [item["metadata"]["position"] for item in result] == list(range(1, len(result) + 1))
    scores = [item["metadata"]["score"] for item in result]
    assert scores == sorted(scores, reverse=True) and 0 < scores[0] <= 1
    assert node.process_data["retrieval_settings"]["top_k"] == 3
    json.dumps(node.outputs)


@pytest.mark.django_db
def test_retrieval_result_is_an_llm_context(tenant):
    dataset = make_dataset(tenant)
    nodes = [
        start("q"),
        retrieval([dataset.pk]),
        llm(
            model=OFFLINE_MODEL,
            prompt_template=[
                {"role": "system", "text": "<context>{{#context#}}</context>"},
                {"role": "user", "text": "{{#start.q#}}"},
            ],
            context={"enabled": True, "variable_selector": ["kr", "result"]},
        ),
    ]
    run, events = execute(
        nodes, chain("start", "kr", "llm"), {"q": "Which fibre is shorn from sheep?"}, tenant=tenant
    )
    assert run.status == "succeeded", run.error
    assert finished(events)["llm"].outputs["text"] == TEXTS["wool"]


@pytest.mark.django_db
def test_another_tenants_dataset_is_ignored_and_never_read(tenant, other_tenant):
    ours = make_dataset(tenant)
    theirs = make_dataset(other_tenant, texts={"secret": "Wool prices are secret at Globex."})
    node = search(tenant, retrieval([theirs.pk, ours.pk, "not-a-uuid"]), "wool sheep")
    assert {item["metadata"]["dataset_id"] for item in node.outputs["result"]} == {str(ours.pk)}
    assert node.process_data["ignored_dataset_ids"] == [str(theirs.pk), "not-a-uuid"]
    only_theirs = search(tenant, retrieval([theirs.pk]), "wool sheep")
    assert only_theirs.outputs["result"] == []
    assert Chunk.dangerously_unscoped.get(dataset=theirs).hit_count == 0


@pytest.mark.django_db
def test_an_empty_query_gives_an_empty_result(tenant):
    dataset = make_dataset(tenant, texts={"wool": TEXTS["wool"]})
    node = search(tenant, retrieval([dataset.pk]), "   ")
    assert node.outputs == {"result": []}
    assert "empty" in node.process_data["note"]


@pytest.mark.django_db
def test_multiple_retrieval_config_sets_top_k_threshold_and_rerank(tenant):
    dataset = make_dataset(tenant)
    config = {
        "top_k": 1,
        "score_threshold": 0.01,
        "reranking_enable": True,
        "reranking_mode": "reranking_model",
        "reranking_model": {"provider": "offline", "model": "weft-offline-rerank"},
    }
    node = search(
        tenant, retrieval([dataset.pk], multiple_retrieval_config=config), "indigo denim colour"
    )
    (item,) = node.outputs["result"]
    assert item["title"] == "dye.txt"
    settings = node.process_data["retrieval_settings"]
    assert (
        settings["top_k"],
        settings["score_threshold_enabled"],
        settings["score_threshold"],
    ) == (
        1,
        True,
        0.01,
    )
    assert settings["reranking_enable"] is True
    assert settings["reranking_model"]["reranking_model_name"] == "weft-offline-rerank"


@pytest.mark.django_db
def test_weighted_score_searches_both_ways_with_the_weights(tenant):
    dataset = make_dataset(tenant)
    config = {
        "top_k": 2,
        "reranking_enable": True,
        "reranking_mode": "weighted_score",
        "weights": {
            "vector_setting": {"vector_weight": 0.3},
            "keyword_setting": {"keyword_weight": 0.7},
        },
    }
    node = search(tenant, retrieval([dataset.pk], multiple_retrieval_config=config), "cotton yarn")
    assert node.outputs["result"][0]["title"] == "cotton.txt"
    settings = node.process_data["retrieval_settings"]
    assert settings["search_method"] == "hybrid_search"
    assert settings["weights"]["keyword_setting"]["keyword_weight"] == 0.7


@pytest.mark.django_db
def test_manual_metadata_filter_with_a_reference(tenant):
    authors = {"wool": "Ann Weaver", "cotton": "Bob Picker", "dye": "Ann Dyer"}
    dataset = make_dataset(tenant, authors=authors)
    node = make_node(
        "kr",
        "knowledge-retrieval",
        query_variable_selector=["start", "q"],
        dataset_ids=[str(dataset.pk)],
        retrieval_mode="multiple",
        multiple_retrieval_config={"top_k": 5, "reranking_enable": False},
        metadata_filtering_mode="manual",
        metadata_filtering_conditions={
            "logical_operator": "and",
            "conditions": [
                {"name": "author", "comparison_operator": "start with", "value": "{{#start.who#}}"}
            ],
        },
    )
    nodes = [start("q", "who"), node]
    run, events = execute(
        nodes, chain("start", "kr"), {"q": "fibre colour sheep yarn", "who": "Ann"}, tenant=tenant
    )
    assert run.status == "succeeded", run.error
    titles = {item["title"] for item in finished(events)["kr"].outputs["result"]}
    assert titles == {"wool.txt", "dye.txt"}


@pytest.mark.django_db
def test_single_mode_searches_the_first_dataset(tenant):
    first = make_dataset(tenant, name="Wool", texts={"wool": TEXTS["wool"]})
    second = make_dataset(tenant, name="Cotton", texts={"cotton": TEXTS["cotton"]})
    node = make_node(
        "kr",
        "knowledge-retrieval",
        query_variable_selector=["start", "q"],
        dataset_ids=[str(first.pk), str(second.pk)],
        retrieval_mode="single",
        single_retrieval_config={"model": OFFLINE_MODEL},
    )
    found = search(tenant, node, "fibre")
    assert {item["metadata"]["dataset_name"] for item in found.outputs["result"]} == {"Wool"}
    assert found.process_data["datasets"] == [{"id": str(first.pk), "name": "Wool"}]
