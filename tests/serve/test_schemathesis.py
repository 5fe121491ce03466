"""schemathesis against the server's own OpenAPI spec (/openapi.json) over loopback: no request
it generates, valid (positive) or not (negative), gets a 5xx. Bounded: 20 examples per operation
and mode, and generated requests ask for at most 4 tokens so each costs a CPU step or a few."""
from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from serve_testlib import API_KEY, MODEL

MAX_TOKENS = 4
EXAMPLES = 20


def bounded(body):
    """Keep generated requests cheap: the served model's name (else all would stop at the 404) and
    few new tokens (else one example could decode the whole context on the CPU)."""
    if isinstance(body, dict):
        if isinstance(body.get("model"), str):
            body["model"] = MODEL
        if not isinstance(body.get("max_tokens"), int) or body["max_tokens"] > MAX_TOKENS:
            body["max_tokens"] = MAX_TOKENS
        body.pop("max_completion_tokens", None)
    return body


def test_no_generated_request_gets_a_server_error(server):
    """(Loops over the operations itself: schemathesis's lazy pytest fixture does not run under this pytest.)"""
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/v1/completions", "/v1/chat/completions", "/v1/models", "/health"}
    for operation in operations:
        # a GET without parameters has nothing to make invalid
        modes = [GenerationMode.POSITIVE] + ([GenerationMode.NEGATIVE] if operation.method.upper() == "POST" else [])
        for mode in modes:
            @given(case=operation.as_strategy(mode))
            @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
            def check(case):
                case.body = bounded(case.body)
                case.call_and_validate(headers={"Authorization": f"Bearer {API_KEY}"}, checks=[not_a_server_error])

            check()
