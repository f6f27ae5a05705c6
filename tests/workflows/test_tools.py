"""Built-in tools (workflows.tools) for real: the registry as Dify keys it, the time tools, the
arithmetic evaluator and its bounds, the web scraper and Wikipedia against a loopback HTTP
server (allow-listed for the test, refused by the guard when not), the tool node in workflow
runs, and validation of tool nodes, the shared Dify exports' included."""

# ruff: noqa: RUF001 - full-width CJK punctuation is part of the sample file names

from __future__ import annotations

import http.server
import itertools
import json
import re
import socket
import threading
from collections.abc import Iterator
from datetime import datetime
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import jsonschema
import pytest
from asgiref.sync import async_to_sync

import workflows.nodes  # noqa: F401 - registers every node type
from providers import http as guarded
from providers.runtime.types import Tool
from tenants.context import tenant_context
from workflows import services
from workflows.dsl import load_dsl, validate
from workflows.dsl.nodes_opaque import AgentData, ToolData
from workflows.models import NodeExecution
from workflows.runner import run_create, run_execute
from workflows.tools import ToolContext, ToolError, ToolParameter, registry
from workflows.tools.maths import evaluate

from .conftest import SAMPLES, make_edge, make_node, sample_path
from .helpers import end, execute, finished, start

CONTEXT = ToolContext(tenant=None, app_id="app", user_id="user", run_id="run")


def invoke(provider: str, name: str, **parameters):
    tool = registry.get(provider, name)
    assert tool is not None, f"{provider}/{name} is not registered"
    return async_to_sync(tool.invoke)(CONTEXT, parameters)


def refused(provider: str, name: str, **parameters) -> ToolError:
    with pytest.raises(ToolError) as caught:
        invoke(provider, name, **parameters)
    return caught.value


# --- A loopback web site ---------------------------------------------------------------------


class Site:
    """A real HTTP server on 127.0.0.1: pages by path, and every request it was sent."""

    def __init__(self) -> None:
        self.pages: dict[str, tuple[int, str, bytes]] = {}
        self.requests: list[dict] = []
        site = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                parts = urlsplit(self.path)
                site.requests.append(
                    {
                        "path": parts.path,
                        "query": parse_qs(parts.query),
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                    }
                )
                status, kind, body = site.pages.get(
                    parts.path, (404, "text/plain", b"no such page")
                )
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def page(
        self, path: str, body: str | bytes, kind: str = "text/html; charset=utf-8", status=200
    ):
        self.pages[path] = (status, kind, body.encode() if isinstance(body, str) else body)
        return f"{self.url}{path}"


@pytest.fixture
def site(settings) -> Iterator[Site]:
    """The loopback site, allow-listed for the test."""
    served = Site()
    thread = threading.Thread(target=served.server.serve_forever, daemon=True)
    thread.start()
    settings.WEFT_OUTBOUND_ALLOWLIST = ["127.0.0.1/32"]
    guarded.reset_allowlist()
    yield served
    served.server.shutdown()
    served.server.server_close()
    guarded.reset_allowlist()


# --- The registry ------------------------------------------------------------------------------


def test_registry_keys_tools_as_dify_does():
    keys = [tool.key for tool in registry.all()]
    assert keys == sorted(keys)
    assert {
        "time/current_time",
        "time/timezone_conversion",
        "time/weekday",
        "webscraper/webscraper",
        "maths/eval_expression",
        "wikipedia/wikipedia_search",
    } <= set(keys)
    tool = registry.get("time", "current_time")
    assert tool is not None
    assert (tool.provider_id, tool.name, tool.label) == ("time", "current_time", "Current Time")
    assert tool.description and tool.icon["content"]
    # Dify 1.x names its own providers by plugin id.
    assert registry.get("langgenius/time/time", "current_time") is tool
    for provider, name in [
        ("jina", "jina_reader"),
        ("langgenius/duckduckgo/duckduckgo", "ddgo_search"),
        ("hjlarry/small_pay/small_pay", "create_order"),
        ("someone/time/time", "current_time"),
        ("time", "no_such_tool"),
        (None, "current_time"),
        ("time", None),
    ]:
        assert registry.get(provider, name) is None, (provider, name)


def test_definitions_are_function_schemas_without_the_builders_settings():
    for tool in registry.all():
        definition = tool.definition()
        assert isinstance(definition, Tool)
        assert re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", definition.name)
        jsonschema.Draft202012Validator.check_schema(definition.parameters)
        offered = set(definition.parameters["properties"])
        assert offered == {p.name for p in tool.parameters if p.form == "llm"}
        assert set(definition.parameters["required"]) <= offered
    # current_time's format and time zone are the builder's settings: the model sees none.
    assert registry.get("time", "current_time").definition().parameters["properties"] == {}
    wikipedia = registry.get("wikipedia", "wikipedia_search")
    assert wikipedia.definition().parameters["required"] == ["query"]
    assert set(wikipedia.definition(omit={"language"}).parameters["properties"]) == {"query"}


def test_parameters_are_converted_and_checked():
    number = ToolParameter("n", "integer", minimum=1, maximum=10)
    assert number.convert("7") == 7
    assert number.convert(3.0) == 3
    for bad in ("seven", 3.5, 11, True):
        with pytest.raises(ToolError, match="“n”"):
            number.convert(bad)
    flag = ToolParameter("f", "boolean")
    assert [flag.convert(v) for v in ("true", "0", 1, False)] == [True, False, True, False]
    choice = ToolParameter("c", "select", options=("a", "b"))
    with pytest.raises(ToolError, match="one of a, b"):
        choice.convert("z")
    weekday = registry.get("time", "weekday")
    with pytest.raises(ToolError, match="“day” is required"):
        weekday.check({"year": 2024, "month": 2, "day": ""})
    assert weekday.check({"year": "2024", "month": 2, "day": 29, "extra": "ignored"}) == {
        "year": 2024,
        "month": 2,
        "day": 29,
    }


# --- Time --------------------------------------------------------------------------------------


def test_current_time_in_a_time_zone_and_format():
    zone = ZoneInfo("Asia/Tokyo")
    before = datetime.now(zone).strftime("%Y-%m-%d %H:%M")
    text = invoke("time", "current_time", timezone="Asia/Tokyo", format="%Y-%m-%d %H:%M").text
    after = datetime.now(zone).strftime("%Y-%m-%d %H:%M")
    assert text in (before, after)
    default = invoke("time", "current_time").text
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", default)
    assert "Mars/Olympus" in refused("time", "current_time", timezone="Mars/Olympus").message
    assert "time zone" in refused("time", "current_time", timezone="../../etc/passwd").message


def test_timezone_conversion_weekday_and_timestamps():
    converted = invoke(
        "time",
        "timezone_conversion",
        current_time="2024-07-01 12:00:00",
        current_timezone="America/New_York",
        target_timezone="Asia/Shanghai",
    )
    assert converted.text == "2024-07-02 00:00:00"  # New York is on summer time (UTC-4)
    assert "2024-05-01 13:45:00" in (
        refused(
            "time",
            "timezone_conversion",
            current_time="yesterday",
            current_timezone="UTC",
            target_timezone="UTC",
        ).message
    )
    assert invoke("time", "weekday", year=2024, month=2, day=29).text == (
        "February 29, 2024 is Thursday."
    )
    assert "no day 29" in refused("time", "weekday", year=2023, month=2, day=29).message
    stamp = invoke(
        "time", "localtime_to_timestamp", localtime="2024-01-01 08:00:00", timezone="Asia/Shanghai"
    ).text
    assert stamp == "1704067200"
    back = invoke("time", "timestamp_to_localtime", timestamp=stamp, timezone="Europe/Paris")
    assert back.text == "2024-01-01 01:00:00"


# --- Arithmetic --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "text"),
    [
        ("1 + 2 * 3", "7"),
        ("(3.5 + 4) * 2", "15"),
        ("2 ** 10", "1024"),
        ("-3 ** 2", "-9"),
        ("7 // 2 + 7 % 2", "4"),
        ("10 / 4", "2.5"),
        ("1 / 3", "0.333333333333333"),
        ("sqrt(16) + abs(-2)", "6"),
        ("round(pi, 4)", "3.1416"),
        ("max(1, 5, 3) - min(2, 4)", "3"),
        ("log(8, 2)", "3"),
        ("factorial(20)", "2432902008176640000"),
        ("2 ** -2", "0.25"),
        ("6 × 7 ÷ 2 − 1", "20"),
        ("2 ** 3000 // 2 ** 2999", "2"),
    ],
)
def test_arithmetic(expression, text):
    result = invoke("maths", "eval_expression", expression=expression)
    assert result.text == text
    assert json.dumps(result.json)  # plain JSON: {"result": number}


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("1 / 0", "Division by zero"),
        ("5 % 0", "Division by zero"),
        ("5 // 0.0", "Division by zero"),
        ("0 ** -1", "Division by zero"),
        ("9 ** 9 ** 9", "too large"),
        ("2 ** 100000", "too large"),
        ("10.0 ** 400", "too large"),
        ("exp(1000)", "too large"),
        ("factorial(100000)", "too large"),
        ("(2 ** 3000) * (2 ** 3000)", "too large"),
        ("(-8) ** (1 / 3)", "not a real number"),
        ("sqrt(-1)", "not defined"),
        ("x + 1", "Unknown name “x”"),
        ("__import__('os').system('id')", "Unknown function"),
        ("open('/etc/passwd')", "Unknown function “open”"),
        ("(1).__class__", "is not arithmetic"),
        ("'a' * 3", "is not a number"),
        ("[1, 2]", "is not arithmetic"),
        ("lambda: 1", "is not arithmetic"),
        ("1 < 2", "is not arithmetic"),
        ("True + 1", "is not a number"),
        ("2 ^ 10", "write 2**10"),
        ("sqrt(x=4)", "plain arguments"),
        ("1 +", "not an arithmetic expression"),
        ("(" * 400 + "1" + ")" * 400, "expression"),
        ("1+" * 400 + "1", "too long"),
        ("", "required"),
    ],
)
def test_arithmetic_refuses(expression, message):
    assert message in refused("maths", "eval_expression", expression=expression).message


def test_arithmetic_never_evaluates_code(tmp_path):
    marker = tmp_path / "ran"
    with pytest.raises(ToolError):
        evaluate(f"__import__('pathlib').Path({str(marker)!r}).touch()")
    assert not marker.exists()


# --- The web scraper ---------------------------------------------------------------------------

ARTICLE = """<!doctype html><html lang="en"><head><title>Looms of Lyon</title>
<script>var secret = "do-not-show";</script><style>p {color: red}</style></head>
<body><nav><a href="/">Home</a> | <a href="/shop">Shop</a></nav>
<main><h1>Looms</h1><p>The Jacquard loom read punched cards.</p>
<p>It wove patterns <b>automatically</b>.</p></main>
<footer>Copyright footer text</footer></body></html>"""


def test_webscraper_reads_the_text_of_a_page(site, settings):
    url = site.page("/looms", ARTICLE)
    result = invoke("webscraper", "webscraper", url=url, user_agent="WeftTest/1.0")
    assert result.text.startswith("Looms of Lyon\n\n")
    assert "The Jacquard loom read punched cards." in result.text
    assert "It wove patterns automatically." in result.text
    for hidden in ("do-not-show", "color: red", "Shop", "Copyright footer"):
        assert hidden not in result.text
    assert site.requests[-1]["headers"]["user-agent"] == "WeftTest/1.0"
    assert site.requests[-1]["path"] == "/looms"
    text = invoke(
        "webscraper", "webscraper", url=site.page("/notes.txt", "plain notes\n", "text/plain")
    )
    assert text.text == "plain notes"


def test_webscraper_errors_are_clear(site, settings):
    missing = refused("webscraper", "webscraper", url=f"{site.url}/gone")
    assert (missing.code, missing.message) == (
        "tool_http_error",
        "The page answered HTTP 404 (127.0.0.1).",
    )
    assert (
        "not an http or https URL" in refused("webscraper", "webscraper", url="ftp://x/y").message
    )
    assert "required" in refused("webscraper", "webscraper", url="").message
    agent = refused("webscraper", "webscraper", url=f"{site.url}/x", user_agent="a\r\nX-Evil: 1")
    assert agent.message == "The user agent must be one line of printable text."
    blank = refused("webscraper", "webscraper", url=site.page("/blank", "<html></html>"))
    assert "No readable text" in blank.message


def test_webscraper_is_refused_private_addresses_not_allow_listed(site, settings):
    url = site.page("/looms", ARTICLE)
    settings.WEFT_OUTBOUND_ALLOWLIST = []
    guarded.reset_allowlist()
    error = refused("webscraper", "webscraper", url=url)
    assert error.code == "outbound_blocked"
    assert "private or local address" in error.message
    assert site.requests == [], "the guard refuses before connecting"
    metadata = refused("webscraper", "webscraper", url="http://169.254.169.254/latest/meta-data")
    assert metadata.code == "outbound_blocked"


# --- Wikipedia ---------------------------------------------------------------------------------


def _wiki_answer(*pages) -> str:
    return json.dumps(
        {
            "batchcomplete": True,
            "query": {
                "pages": [
                    {
                        "pageid": 10 + index,
                        "title": title,
                        "index": index + 1,
                        "extract": extract,
                        "fullurl": f"https://en.wikipedia.org/wiki/{title.replace(' ', '_')}",
                    }
                    for index, (title, extract) in enumerate(pages)
                ]
            },
        }
    )


@pytest.fixture
def wiki(site, settings):
    settings.WEFT_TOOLS_WIKIPEDIA_URL = f"{site.url}/{{language}}/w/api.php"
    return site


def test_wikipedia_search(wiki):
    wiki.page(
        "/en/w/api.php",
        _wiki_answer(
            ("Jacquard machine", "A device fitted to a loom."),
            ("Joseph Marie Jacquard", "A French weaver and merchant."),
        ),
        "application/json",
    )
    result = invoke("wikipedia", "wikipedia_search", query="jacquard loom", language="English")
    assert result.text == (
        "Page: Jacquard machine\nSummary: A device fitted to a loom.\n\n"
        "Page: Joseph Marie Jacquard\nSummary: A French weaver and merchant."
    )
    assert [page["title"] for page in result.json] == ["Jacquard machine", "Joseph Marie Jacquard"]
    assert result.json[0]["url"] == "https://en.wikipedia.org/wiki/Jacquard_machine"
    sent = wiki.requests[-1]
    assert sent["path"] == "/en/w/api.php"  # "English" is read as the code en
    assert sent["query"]["gsrsearch"] == ["jacquard loom"]
    assert sent["query"]["generator"] == ["search"]


def test_wikipedia_language_and_empty_results(wiki):
    wiki.page("/de/w/api.php", json.dumps({"batchcomplete": True}), "application/json")
    result = invoke("wikipedia", "wikipedia_search", query="Webstuhl", language="de")
    assert result.text == "No Wikipedia article matches “Webstuhl”."
    assert result.json == []
    # The code goes into a host name: nothing else is accepted.
    bad = refused("wikipedia", "wikipedia_search", query="x", language="en.evil.example/")
    assert "not a Wikipedia language" in bad.message
    assert [r["path"] for r in wiki.requests] == ["/de/w/api.php"]


def test_wikipedia_unreachable_and_refusing(wiki, settings):
    wiki.page(
        "/en/w/api.php",
        json.dumps({"error": {"code": "srsearch-text-disabled", "info": "Search is disabled."}}),
        "application/json",
    )
    assert refused("wikipedia", "wikipedia_search", query="x").message == (
        "Wikipedia refused the search: Search is disabled."
    )
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.WEFT_TOOLS_WIKIPEDIA_URL = f"http://127.0.0.1:{port}/{{language}}/w/api.php"
    error = refused("wikipedia", "wikipedia_search", query="x")
    assert error.code == "outbound_failed"
    assert error.message.startswith("Wikipedia could not be reached: Could not connect to")


# --- The tool node in a run --------------------------------------------------------------------


def tool_node(node_id: str, provider: str, name: str, parameters=None, configurations=None, **data):
    fields = {
        "provider_id": provider,
        "provider_name": provider,
        "provider_type": "builtin",
        "tool_name": name,
        "tool_label": name,
        "tool_parameters": parameters or {},
        "tool_configurations": configurations or {},
    }
    return make_node(node_id, "tool", **(fields | data))


def chain(*ids: str) -> list[dict]:
    return [make_edge(a, b) for a, b in itertools.pairwise(ids)]


def test_tool_node_renders_templates_and_gives_dify_outputs():
    nodes = [
        start("q"),
        tool_node(
            "calc",
            "maths",
            "eval_expression",
            {"expression": {"type": "mixed", "value": "({{#start.q#}}) * 2"}},
        ),
        end(text=["calc", "text"], json=["calc", "json"], files=["calc", "files"]),
    ]
    run, events = execute(nodes, chain("start", "calc", "end"), {"q": "20 + 1"})
    assert run.status == "succeeded", run.error
    assert run.outputs == {"text": "42", "json": [{"result": 42}], "files": []}
    node = finished(events)["calc"]
    assert node.inputs == {"expression": "(20 + 1) * 2"}
    assert node.process_data == {"tool": "maths/eval_expression"}


def test_tool_node_reads_variables_and_settings_old_and_new():
    nodes = [
        start("zone"),
        # Dify 0.x: settings as plain values; a parameter from a variable.
        tool_node(
            "old",
            "time",
            "current_time",
            {"timezone": {"type": "variable", "value": ["start", "zone"]}},
            {"format": "%Y|%Z", "timezone": "UTC"},
        ),
        # Dify 1.x: the plugin id, settings as typed inputs.
        tool_node(
            "new",
            "langgenius/time/time",
            "current_time",
            configurations={
                "format": {"type": "constant", "value": "%Z"},
                "timezone": {"type": "constant", "value": "Asia/Tokyo"},
            },
        ),
        end(old=["old", "text"], new=["new", "text"]),
    ]
    run, _ = execute(
        nodes,
        [*chain("start", "old", "end"), *chain("start", "new", "end")],
        {"zone": "Europe/Paris"},
    )
    assert run.status == "succeeded", run.error
    year = datetime.now(ZoneInfo("Europe/Paris")).year
    assert run.outputs["old"] in (f"{year}|CET", f"{year}|CEST")  # the variable wins
    assert run.outputs["new"] == "JST"


def test_tool_node_failure_is_the_nodes_with_the_tools_code():
    nodes = [
        start("q"),
        tool_node(
            "calc", "maths", "eval_expression", {"expression": {"type": "mixed", "value": "1/0"}}
        ),
        end(text=["calc", "text"]),
    ]
    run, events = execute(nodes, chain("start", "calc", "end"), {"q": ""})
    assert run.status == "failed"
    node = finished(events)["calc"]
    assert (node.status, node.error_type, node.error) == (
        "failed",
        "tool_error",
        "Division by zero.",
    )
    nodes[1]["data"] |= {
        "error_strategy": "default-value",
        "default_value": [{"key": "text", "type": "string", "value": "n/a"}],
    }
    run, _ = execute(nodes, chain("start", "calc", "end"), {"q": ""})
    assert run.status == "partial-succeeded"
    assert run.outputs == {"text": "n/a"}


def test_tool_node_inside_an_iteration():
    nodes = [
        make_node(
            "start", "start", variables=[{"variable": "data", "label": "d", "type": "json_object"}]
        ),
        make_node(
            "it",
            "iteration",
            iterator_selector=["start", "data", "items"],
            output_selector=["calc", "text"],
            start_node_id="it-start",
        ),
        make_node("it-start", "iteration-start", parent="it"),
        tool_node(
            "calc",
            "maths",
            "eval_expression",
            {"expression": {"type": "mixed", "value": "{{#it.item#}}"}},
            parent="it",
        ),
        end(out=["it", "output"]),
    ]
    edges = [*chain("start", "it", "end"), make_edge("it-start", "calc")]
    run, _ = execute(nodes, edges, {"data": {"items": ["1+1", "2*3", "2**0.5"]}})
    assert run.status == "succeeded", run.error
    assert run.outputs == {"out": ["2", "6", "1.4142135623731"]}


def test_a_tool_node_weft_lacks_fails_at_run_when_not_validated_first():
    nodes = [
        start("q"),
        tool_node("search", "tavily", "tavily_search"),
        end(text=["search", "text"]),
    ]
    run, events = execute(nodes, chain("start", "search", "end"), {"q": "x"})
    assert run.status == "failed"
    node = finished(events)["search"]
    assert node.error_type == "ToolNotFound"
    assert "tool tavily/tavily_search is not among Weft's built-in tools" in node.error


def test_tool_node_fetches_a_page_inside_a_run(site):
    url = site.page("/looms", ARTICLE)
    nodes = [
        start("url"),
        tool_node(
            "scrape",
            "webscraper",
            "webscraper",
            {"url": {"type": "variable", "value": ["start", "url"]}},
        ),
        end(text=["scrape", "text"]),
    ]
    run, _ = execute(nodes, chain("start", "scrape", "end"), {"url": url})
    assert run.status == "succeeded", run.error
    assert "The Jacquard loom read punched cards." in run.outputs["text"]


# --- Validation ----------------------------------------------------------------------------


def codes(build_spec, nodes, edges) -> list[tuple[str, str | None]]:
    return [(e.code, e.node_id) for e in validate(build_spec(nodes, edges))]


def test_validation_knows_builtin_tools_and_names_missing_ones(build_spec):
    nodes = [
        start("q"),
        tool_node(
            "calc",
            "maths",
            "eval_expression",
            {"expression": {"type": "mixed", "value": "{{#start.q#}}"}},
        ),
        end(text=["calc", "text"]),
    ]
    assert codes(build_spec, nodes, chain("start", "calc", "end")) == []
    nodes[1] = tool_node(
        "calc", "tavily", "tavily_search", {"query": {"type": "mixed", "value": "x"}}
    )
    errors = validate(build_spec(nodes, chain("start", "calc", "end")))
    assert [(e.code, e.node_id) for e in errors] == [("unknown_tool", "calc")]
    assert "tool tavily/tavily_search is not among Weft's built-in tools" in errors[0].message
    assert "maths, time, webscraper, wikipedia" in errors[0].message
    nodes[1] = tool_node("calc", "maths", "eval_expression", provider_type="api")
    errors = validate(build_spec(nodes, chain("start", "calc", "end")))
    assert [(e.code, e.node_id) for e in errors] == [("unknown_tool", "calc")]
    assert "api tool maths/eval_expression is not available in Weft" in errors[0].message


def test_validation_checks_the_references_of_runnable_tool_nodes(build_spec):
    nodes = [
        start("q"),
        tool_node(
            "calc",
            "maths",
            "eval_expression",
            {"expression": {"type": "variable", "value": ["ghost", "value"]}},
            error_strategy="fail-branch",
        ),
        end(text=["calc", "text"]),
    ]
    edges = [make_edge("start", "calc"), make_edge("calc", "end", "success-branch")]
    errors = validate(build_spec(nodes, edges))
    assert [(e.code, e.field) for e in errors] == [
        ("dangling_selector", "data.tool_parameters.expression.value")
    ]
    edges.append(make_edge("calc", "end", "elsewhere"))
    assert "bad_source_handle" in [e.code for e in validate(build_spec(nodes, edges))]


def _unrunnable(node) -> bool:
    data = node.data
    return isinstance(data, ToolData | AgentData) and data.problem() is not None


def tool_samples() -> list:
    if not SAMPLES.is_dir():
        return [pytest.param(None, marks=pytest.mark.skip(reason="../shared is not here"))]
    found = []
    for path in sorted(SAMPLES.glob("*.yml")):
        types = {n.data.type for n in load_dsl(path.read_bytes()).workflow.graph.nodes}
        if types & {"tool", "agent"}:
            found.append(pytest.param(path.name, id=path.stem.split("__", 1)[-1]))
    return found


@pytest.mark.parametrize("name", tool_samples())
def test_sample_tool_nodes_validate_or_name_their_missing_tool(name):
    spec = load_dsl(sample_path(name).read_bytes()).workflow
    errors = validate(spec)
    assert {e.code for e in errors} <= {"unknown_tool", "unsupported_agent"}
    assert {e.node_id for e in errors} == {n.id for n in spec.graph.nodes if _unrunnable(n)}
    for error in errors:
        data = spec.graph.node(error.node_id).data
        if isinstance(data, ToolData):
            assert f"tool {data.describe()} is not" in error.message
        else:
            named = [tool.key for tool in data.tools() if tool.key in error.message]
            assert named or f"strategy {data.describe()}" in error.message


def test_samples_with_builtin_tools_validate_whole():
    for name in ("svcvit__记忆测试.yml", "svcvit__Deep Researcher On Dify .yml"):
        assert validate(load_dsl(sample_path(name).read_bytes()).workflow) == [], name
    kimi = load_dsl(sample_path("svcvit__simple-kimi.yml").read_bytes()).workflow
    errors = validate(kimi)
    # Four web scrapers run; only DuckDuckGo search is missing.
    assert [(e.code, kimi.graph.node(e.node_id).data.describe()) for e in errors] == [
        ("unknown_tool", "duckduckgo/ddgo_search")
    ]
    travel = load_dsl(sample_path("svcvit__旅行Demo.yml").read_bytes()).workflow
    assert [e.code for e in validate(travel)] == ["unknown_tool"]
    assert "langgenius/duckduckgo/duckduckgo/ddgo_search" in validate(travel)[0].message
    mcp = load_dsl(sample_path("svcvit__MCP.yml").read_bytes()).workflow
    assert [e.code for e in validate(mcp)] == ["unsupported_agent"]
    assert "hjlarry/agent/mcp_agent" in validate(mcp)[0].message


@pytest.mark.django_db
def test_a_sample_with_a_builtin_tool_imports_and_runs(tenant):
    """The time tool of a real chatflow export runs with its Dify 0.x settings."""
    path = sample_path("svcvit__记忆测试.yml")
    workflow = services.workflow_import(tenant=tenant, content=path.read_bytes()).workflow
    system = {"query": "hello", "dialogue_count": 3}  # every third turn updates the memory
    run = run_create(tenant=tenant, workflow=workflow, inputs={}, system=system)
    shanghai = ZoneInfo("Asia/Shanghai")
    before = datetime.now(shanghai).strftime("%Y-%m-%d")
    row = async_to_sync(run_execute)(run.pk)
    days = {before, datetime.now(shanghai).strftime("%Y-%m-%d")}
    assert row.status == "succeeded", row.error
    with tenant_context(tenant):
        clock = NodeExecution.objects.get(run=row, node_id="1726715181866")
    assert clock.status == "succeeded"
    assert clock.outputs["text"][:10] in days
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", clock.outputs["text"])
    assert (clock.outputs["json"], clock.outputs["files"]) == ([], [])
