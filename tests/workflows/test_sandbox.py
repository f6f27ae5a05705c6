"""The code sandbox's contract: inputs in, a checked dict out, typed errors, Dify's limits,
timeouts, and executions in parallel up to the pool's size. Escapes: test_sandbox_escapes.py."""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import os
import re
import time

import pytest

from workflows import sandbox
from workflows.sandbox import (
    CodeExecutionError,
    CodeSyntaxError,
    InputValidationError,
    MainFunctionError,
    OutputValidationError,
    SandboxOptions,
    SandboxPool,
    SandboxTimeout,
    SandboxUnavailable,
)
from workflows.sandbox.limits import (
    MAX_DEPTH,
    MAX_NUMBER,
    MAX_NUMBER_ARRAY_LENGTH,
    MAX_OBJECT_ARRAY_LENGTH,
    MAX_STRING_ARRAY_LENGTH,
    MAX_STRING_LENGTH,
    MIN_NUMBER,
    check_outputs,
)

ECHO = "def main(**inputs):\n    return inputs\n"


@pytest.fixture(scope="module")
def pool():
    pool = SandboxPool(SandboxOptions(workers=4, timeout=5, cpu_seconds=5, memory_mb=256))
    yield pool
    pool.close()


def test_inputs_are_keyword_arguments_and_the_dict_comes_back(pool):
    code = "def main(arg1: int, arg2: str) -> dict:\n    return {'result': arg2 * arg1}\n"

    result = pool.run_sync(code, {"arg1": 3, "arg2": "ab"})

    assert result.outputs == {"result": "ababab"}
    assert result.duration_ms > 0


def test_unicode_numbers_and_nesting_round_trip(pool):
    inputs = {
        "text": "héllo 世界 🎉 \u202e",
        "big": MAX_NUMBER,
        "small": MIN_NUMBER,
        "ratio": 0.1 + 0.2,
        "tiny": 1e-25,
        "flags": [True, False, None],
        "nested": {"a": {"b": {"c": {"d": "deep"}}}},  # 5 objects with the top one
    }

    assert pool.run_sync(ECHO, inputs).outputs == inputs


def test_print_and_warnings_are_captured(pool):
    code = (
        "import warnings\n"
        "def main():\n"
        "    print('step', 1)\n"
        "    warnings.warn('careful')\n"
        "    return {'ok': True}\n"
    )

    result = pool.run_sync(code, {})

    assert result.stdout == "step 1\n"
    assert "UserWarning: careful" in result.stderr


def test_the_standard_library_works_including_threads_and_asyncio(pool):
    code = (
        "import asyncio, base64, datetime, decimal, hashlib, json, re, statistics, uuid\n"
        "from concurrent.futures import ThreadPoolExecutor\n"
        "async def twice(x):\n"
        "    await asyncio.sleep(0.01)\n"
        "    return x * 2\n"
        "async def both():\n"
        "    return await asyncio.gather(twice(1), twice(2))\n"
        "def main(text):\n"
        "    with ThreadPoolExecutor(4) as pool:\n"
        "        squares = list(pool.map(lambda i: i * i, range(5)))\n"
        "    return {\n"
        "        'sha': hashlib.sha256(text.encode()).hexdigest()[:8],\n"
        "        'b64': base64.b64encode(text.encode()).decode(),\n"
        "        'words': re.findall(r'\\w+', text),\n"
        "        'mean': statistics.mean([1, 2, 3, 4]),\n"
        "        'third': str(decimal.Decimal(1) / 3)[:6],\n"
        "        'day': datetime.datetime.strptime('2024-02-29', '%Y-%m-%d').strftime('%A'),\n"
        "        'uuid': len(str(uuid.uuid4())),\n"
        "        'json': json.loads('[1, 2]'),\n"
        "        'squares': squares,\n"
        "        'doubled': asyncio.run(both()),\n"
        "    }\n"
    )

    outputs = pool.run_sync(code, {"text": "hello sandbox"}).outputs

    assert outputs == {
        "sha": hashlib.sha256(b"hello sandbox").hexdigest()[:8],
        "b64": "aGVsbG8gc2FuZGJveA==",
        "words": ["hello", "sandbox"],
        "mean": 2.5,
        "third": "0.3333",
        "day": "Thursday",
        "uuid": 36,
        "json": [1, 2],
        "squares": [0, 1, 4, 9, 16],
        "doubled": [2, 4],
    }


def test_modules_that_were_not_preloaded_cannot_be_imported(pool):
    with pytest.raises(CodeExecutionError, match="No module named 'numpy'"):
        pool.run_sync("import numpy\ndef main():\n    return {}\n", {})


def test_http_libraries_import_but_say_there_is_no_network_when_used(pool):
    imported = "import json, requests\ndef main():\n    return {'ok': 1}\n"
    assert pool.run_sync(imported, {}).outputs == {"ok": 1}
    used = "import requests\ndef main():\n    requests.get('https://example.com')\n    return {}\n"
    with pytest.raises(CodeExecutionError, match="HTTP request node"):
        pool.run_sync(used, {})


def test_an_exception_reports_type_message_and_only_user_frames(pool):
    code = (
        "def helper(x):\n"
        "    return 1 / x\n"
        "\n"
        "def main(x):\n"
        "    print('before')\n"
        "    return {'y': helper(x)}\n"
    )

    with pytest.raises(CodeExecutionError) as caught:
        pool.run_sync(code, {"x": 0})

    error = caught.value
    assert error.exception_type == "ZeroDivisionError"
    assert error.exception_message == "division by zero"
    assert 'File "<code>", line 6, in main' in error.traceback
    assert 'File "<code>", line 2, in helper' in error.traceback
    assert "return 1 / x" in error.traceback
    assert "sandbox" not in error.traceback
    assert error.message.endswith("ZeroDivisionError: division by zero")
    assert error.stdout == "before\n"


def test_a_syntax_error_names_its_line(pool):
    with pytest.raises(CodeSyntaxError) as caught:
        pool.run_sync("def main():\n    return {'a': 1\n\nx = (\n", {})

    assert caught.value.line == 2
    assert "line 2" in caught.value.message


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("def handler():\n    return {}\n", "must define a function main"),
        ("main = 3\n", "must define a function main"),
        ("def main():\n    return [1, 2]\n", "must return a dict, not list"),
        ("def main():\n    return None\n", "must return a dict, not NoneType"),
    ],
)
def test_main_must_exist_and_return_a_dict(pool, code, message):
    with pytest.raises(MainFunctionError, match=message):
        pool.run_sync(code, {})


def test_a_main_that_does_not_take_the_inputs_fails_clearly(pool):
    with pytest.raises(CodeExecutionError) as caught:
        pool.run_sync("def main(a):\n    return {}\n", {"a": 1, "b": 2})

    assert caught.value.exception_type == "TypeError"
    assert "unexpected keyword argument 'b'" in caught.value.message


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("{'x': float('nan')}", "not JSON-compatible"),
        ("{'x': {1, 2}}", "not JSON-compatible"),
        ("{'x': '\\ud800'}", "not JSON-compatible"),
        ("{'x': 2 ** 63}", "Output `x` is 9223372036854775808, out of the 64-bit"),
        ("{'x': -(2 ** 63) - 1}", "Output `x` is -9223372036854775809"),
        ("{'x': 1e300}", "Output `x` is 1e+300, out of the 64-bit"),
        ("{'x': 'a' * 400_001}", "Output `x` is a string of 400001 characters"),
        ("{'x': {'y': [{'z': 1}] * 2, 'w': ['s'] * 31}}", "Output `x.w` has 31 elements"),
    ],
)
def test_outputs_beyond_difys_limits_are_refused_with_the_output_named(pool, expression, message):
    with pytest.raises(OutputValidationError, match=re.escape(message)):
        pool.run_sync(f"def main():\n    return {expression}\n", {})


def test_outputs_at_difys_limits_pass(pool):
    code = (
        "def main():\n"
        "    return {\n"
        f"        'text': 'a' * {MAX_STRING_LENGTH},\n"
        f"        'words': ['w'] * {MAX_STRING_ARRAY_LENGTH},\n"
        f"        'rows': [{{'i': i}} for i in range({MAX_OBJECT_ARRAY_LENGTH})],\n"
        f"        'numbers': list(range({MAX_NUMBER_ARRAY_LENGTH})),\n"
        "        'deep': {'b': {'c': {'d': {'e': 1}}}},\n"
        "    }\n"
    )

    outputs = pool.run_sync(code, {}).outputs

    assert len(outputs["text"]) == MAX_STRING_LENGTH
    assert len(outputs["numbers"]) == MAX_NUMBER_ARRAY_LENGTH
    assert outputs["deep"]["b"]["c"]["d"] == {"e": 1}


def test_the_limit_checks_name_the_limit():
    with pytest.raises(OutputValidationError, match=r"`a.b.c.d.e` is nested 6 levels.*MAX_DEPTH"):
        check_outputs({"a": {"b": {"c": {"d": {"e": {}}}}}})
    with pytest.raises(OutputValidationError, match=r"`n` has 1001 elements.*NUMBER_ARRAY"):
        check_outputs({"n": [1.5] * (MAX_NUMBER_ARRAY_LENGTH + 1)})
    with pytest.raises(OutputValidationError, match=r"`o` has 31 elements.*OBJECT_ARRAY"):
        check_outputs({"o": [{}] * (MAX_OBJECT_ARRAY_LENGTH + 1)})
    with pytest.raises(OutputValidationError, match=r"`l\[0\]\[0\]\[0\]\[0\]\[0\]` is nested 6"):
        check_outputs({"l": [[[[[[1]]]]]]})
    check_outputs({"a": {"b": {"c": {"d": {"e": 1}}}}, "l": [[[[[1]]]]]})
    assert MAX_DEPTH == 5


def test_inputs_are_checked_before_anything_runs(pool):
    with pytest.raises(InputValidationError, match="Input `doc` is a string of 400001"):
        pool.run_sync(ECHO, {"doc": "x" * (MAX_STRING_LENGTH + 1)})
    with pytest.raises(InputValidationError, match="Input `s` is a set"):
        pool.run_sync(ECHO, {"s": {1}})
    with pytest.raises(InputValidationError, match="Input `f` is nan"):
        pool.run_sync(ECHO, {"f": float("nan")})
    # Array lengths are an output rule only: a node may pass on 50 retrieved chunks.
    chunks = [{"content": f"chunk {i}"} for i in range(50)]
    count = "def main(chunks):\n    return {'count': len(chunks)}\n"
    assert pool.run_sync(count, {"chunks": chunks}).outputs == {"count": 50}


def test_a_request_larger_than_the_input_cap_is_refused():
    pool = SandboxPool(SandboxOptions(workers=1, max_input_bytes=1000))
    try:
        with pytest.raises(InputValidationError, match="the limit is 1000"):
            pool.run_sync(ECHO, {"text": "x" * 2000})
        assert pool.stats()["zygote_pid"] is None  # refused before starting anything
    finally:
        pool.close()


def test_the_timeout_argument_stops_slow_code(pool):
    started = time.monotonic()
    with pytest.raises(SandboxTimeout, match=re.escape("0.5 s timeout")):
        pool.run_sync("import time\ndef main():\n    time.sleep(30)\n", {}, timeout=0.5)
    assert time.monotonic() - started < 3
    assert pool.run_sync(ECHO, {"after": 1}).outputs == {"after": 1}


def test_javascript_is_refused_clearly(pool):
    with pytest.raises(SandboxUnavailable, match="javascript is not available"):
        pool.run_sync("function main() { return {} }", {}, language="javascript")


def test_executions_run_in_parallel_up_to_the_pool_size(pool):
    code = (
        "import time\n"
        "def main(i):\n"
        "    start = time.time()\n"
        "    time.sleep(0.4)\n"
        "    return {'i': i, 'start': start, 'end': time.time()}\n"
    )

    async def many():
        return await asyncio.gather(*(pool.run(code, {"i": i}) for i in range(8)))

    started = time.monotonic()
    results = asyncio.run(many())
    elapsed = time.monotonic() - started

    assert [result.outputs["i"] for result in results] == list(range(8))
    spans = [(result.outputs["start"], result.outputs["end"]) for result in results]
    overlap = max(sum(start <= moment < end for start, end in spans) for moment, _ in spans)
    assert overlap == 4  # the pool's size, never more
    assert 0.8 <= elapsed < 3.2  # two waves of four at least, and not eight in a row


def test_threads_share_the_pool_through_the_sync_wrapper(pool):
    def one(i):
        return pool.run_sync("def main(i):\n    return {'square': i * i}\n", {"i": i})

    with concurrent.futures.ThreadPoolExecutor(max_workers=6) as threads:
        results = list(threads.map(one, range(12)))

    assert [result.outputs["square"] for result in results] == [i * i for i in range(12)]


def test_a_cancelled_execution_kills_its_worker_and_frees_its_slot(pool):
    async def cancel_one():
        task = asyncio.ensure_future(pool.run("import time\ndef main():\n    time.sleep(30)\n", {}))
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return await pool.run(ECHO, {"next": True})

    assert asyncio.run(cancel_one()).outputs == {"next": True}
    assert pool.stats()["busy"] == 0


def test_the_process_pool_comes_from_settings(settings):
    settings.WEFT_SANDBOX_WORKERS = 3
    settings.WEFT_SANDBOX_TIMEOUT = 7.5

    options = SandboxOptions.from_settings()

    assert (options.workers, options.timeout, options.memory_mb) == (3, 7.5, 512)


def test_the_module_api_runs_in_this_processs_pool():
    try:
        result = asyncio.run(
            sandbox.run("def main(a, b):\n    return {'sum': a + b}\n", {"a": 2, "b": 3})
        )
        assert result.outputs == {"sum": 5}
        assert sandbox.run_sync(ECHO, {"x": [1]}).outputs == {"x": [1]}
    finally:
        sandbox.close_pool()


def test_a_forked_process_gets_its_own_pool():
    """A Celery prefork child must not use its parent's keeper thread (it has none)."""
    try:
        parent_pool = sandbox.get_pool()
        assert parent_pool.run_sync(ECHO, {"in": "parent"}).outputs == {"in": "parent"}
        pid = os.fork()
        if pid == 0:
            try:
                ok = sandbox.get_pool() is not parent_pool
                ok = ok and sandbox.run_sync(ECHO, {"in": "child"}).outputs == {"in": "child"}
                sandbox.close_pool()
            finally:
                os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert parent_pool.run_sync(ECHO, {"in": "parent"}).outputs == {"in": "parent"}
    finally:
        sandbox.close_pool()
