"""The Prometheus series of the HTTP layer (counted by server/api/middleware.py), of generation and of the store.
vLLM's engine metrics (vllm:*) share the registry."""

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160)

REQUESTS = Counter("lima_http_requests_total", "HTTP requests by route and status", ["method", "route", "status"])
REQUEST_LATENCY = Histogram(
    "lima_http_request_duration_seconds",
    "Time from request to the last byte of the response (whole stream for SSE)",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
UNHANDLED_ERRORS = Counter(
    "lima_unhandled_errors_total", "Exceptions nothing foresaw (bugs), answered as OpenAI's 500 (or in-band when a "
    "stream had begun) and logged with the request id",
)
IN_FLIGHT = Gauge("lima_http_requests_in_flight", "HTTP requests being served")
TIME_TO_FIRST_TOKEN = Histogram(
    "lima_time_to_first_token_seconds",
    "Time from request to the first generated token",
    ["route", "model"],
    buckets=LATENCY_BUCKETS,
)
PROMPT_TOKENS = Counter("lima_prompt_tokens_total", "Prompt tokens sent to the engine", ["route", "model"])
CACHED_PROMPT_TOKENS = Counter(
    "lima_prompt_cached_tokens_total",
    "Prompt tokens served from vLLM's prefix cache (hit rate: this over lima_prompt_tokens_total)", ["route", "model"],
)
GENERATED_TOKENS = Counter("lima_generation_tokens_total", "Tokens generated", ["route", "model"])
IGNORED_FIELDS = Counter(
    "lima_ignored_request_fields_total", "Request fields OpenAI does not define, ignored as vLLM does", ["route"]
)
LOOP_GUARD_STOPS = Counter("lima_loop_guard_stops_total", "Answers stopped because a sentence kept repeating",
                           ["route", "model"])
ABORTED = Counter("lima_generation_aborted_total", "Generations aborted because the client went away",
                  ["route", "model"])
PENDING = Gauge("lima_generations_pending", "Generations admitted and not finished (running or queued)")
REJECTED = Counter("lima_requests_rejected_total", "Requests refused on purpose: overloaded (503), rate_limited (429)",
                   ["reason"])
AUTH_FAILURES = Counter(
    "lima_auth_failures_total", "Failed authentications: rejected_key (401, a wrong API key), throttled (429, too "
    "many wrong keys from one client address)", ["outcome"],
)
HISTORY_LATENCY = Histogram(
    "lima_history_operation_seconds",
    "Conversation store operations (one Redis round trip each, usually)",
    ["operation"],
    buckets=(0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2),
)
HISTORY_ERRORS = Counter(
    "lima_history_errors_total", "Conversation store operations that failed because Redis was unavailable",
    ["operation"],
)

QUOTA_DECISIONS = Counter(
    "lima_quota_decisions_total", "Per-user quota checks of writes to the conversation store (made only where the "
    "cap is on): allowed, or refused (403 quota_exceeded); quota conversations or stored_bytes", ["quota", "outcome"],
)
for _quota in ("conversations", "stored_bytes"):  # the series exist at zero from the start, for alerts
    for _outcome in ("allowed", "refused"):
        QUOTA_DECISIONS.labels(_quota, _outcome)


def metrics_text() -> tuple[bytes, str]:
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def declare_series(routes: tuple[str, ...], models: list[str]) -> None:
    """Create the series of each route and served model at zero, so dashboards and alerts see them before the
    first request (an adapter loaded later gets its series with its first request)."""
    for reason in ("overloaded", "rate_limited"):
        REJECTED.labels(reason)
    for outcome in ("rejected_key", "throttled"):
        AUTH_FAILURES.labels(outcome)
    for route in routes:
        for model in models:
            for metric in (TIME_TO_FIRST_TOKEN, PROMPT_TOKENS, GENERATED_TOKENS, ABORTED):
                metric.labels(route, model)
