"""UID2 identity mapping through the official SDK (`uid2-client`, `IdentityMapV3Client`).

The SDK does the envelope (AES-256-GCM, timestamp, nonce check) and the `/v3/identity/map` call; this
module adds what a bulk mapper needs around it: batches at the documented size (5,000), several in
flight (documented ceiling 20), and bounded retries with exponential backoff plus jitter that honour
`Retry-After` on 429 and 5xx. Only hashes are sent (the import already derived them).
"""

from __future__ import annotations

import logging
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.conf import settings
from uid2_client import IdentityMapV3Client, IdentityMapV3Input, IdentityMapV3Response, UnmappedIdentityReason
from uid2_client.request_response_util import (
    BINARY,
    Uid2Response,
    _make_url,
    auth_headers,
    create_envelope,
    parse_response,
)

logger = logging.getLogger(__name__)

MAX_BATCH = 5000  # items per request (post-identity-map.md)
MAX_PARALLEL = 20  # batches in flight (post-identity-map.md)
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
DEFAULT_TIMEOUT = 30.0  # seconds per request (connect and each read); P360_UID2_TIMEOUT overrides


class Uid2Error(Exception):
    """The operator refused or could not be reached after the retries; the message is for the user."""


@dataclass(frozen=True)
class Item:
    kind: str  # "email" | "phone"
    hashed: str


@dataclass
class Outcome:
    kind: str
    hashed: str
    status: str  # mapped | optout | invalid
    uid2: str = ""
    previous: str = ""
    refresh_from: datetime | None = None
    raw_reason: str = ""


@dataclass
class BatchResult:
    outcomes: list[Outcome]
    attempts: int
    waited: float = 0.0


@dataclass
class Uid2Settings:
    base_url: str
    api_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    batch_size: int = MAX_BATCH
    parallel: int = 4
    max_retries: int = 5
    backoff_base: float = 1.0
    backoff_cap: float = 60.0
    timeout: float = DEFAULT_TIMEOUT
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    @classmethod
    def from_settings(cls) -> Uid2Settings:
        if not settings.P360_UID2_API_KEY or not settings.P360_UID2_SECRET_KEY:
            raise Uid2Error("UID2 is not configured: set P360_UID2_API_KEY and P360_UID2_SECRET_KEY")
        return cls(
            base_url=settings.P360_UID2_BASE_URL.rstrip("/"),
            api_key=settings.P360_UID2_API_KEY,
            secret_key=settings.P360_UID2_SECRET_KEY,
            batch_size=max(1, min(settings.P360_UID2_BATCH_SIZE, MAX_BATCH)),
            parallel=max(1, min(settings.P360_UID2_PARALLEL, MAX_PARALLEL)),
            max_retries=max(0, settings.P360_UID2_MAX_RETRIES),
            backoff_base=settings.P360_UID2_BACKOFF_BASE,
            backoff_cap=settings.P360_UID2_BACKOFF_CAP,
            timeout=float(getattr(settings, "P360_UID2_TIMEOUT", DEFAULT_TIMEOUT)),
        )

    def __str__(self) -> str:  # never print the key or the secret
        return f"Uid2Settings({self.base_url}, batch={self.batch_size}, parallel={self.parallel})"


def _retry_after(exc: urllib.error.HTTPError) -> float | None:
    value = exc.headers.get("Retry-After") if exc.headers else None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def backoff(attempt: int, base: float, cap: float) -> float:
    """Full-jitter exponential backoff (attempt 1, 2, ...)."""
    return random.uniform(0, min(cap, base * (2 ** (attempt - 1))))


class TimedIdentityMapV3Client(IdentityMapV3Client):
    """The SDK's client with a timeout: its `post()` calls `urlopen` without one, so an operator that accepts the
    connection and never answers would hang the job forever. Same envelope, same parsing (the SDK's helpers)."""

    def __init__(self, base_url: str, api_key: str, client_secret: str, *, timeout: float) -> None:
        super().__init__(base_url, api_key, client_secret)
        self._timeout = timeout

    def generate_identity_map(self, identity_map_input: IdentityMapV3Input) -> IdentityMapV3Response:
        envelope = create_envelope(
            self._client_secret,
            datetime.now(tz=UTC),
            identity_map_input.get_identity_map_input_as_json_string().encode(),
        )
        headers = {**auth_headers(self._api_key), "Content-Type": BINARY}
        req = urllib.request.Request(  # noqa: S310 - the configured https operator
            _make_url(self._base_url, "/v3/identity/map"), headers=headers, method="POST",
            data=envelope.binary_envelope,
        )  # fmt: skip
        with urllib.request.urlopen(req, timeout=self._timeout) as resp:  # noqa: S310 - the configured operator
            answer = Uid2Response.from_bytes(resp.read())
        return IdentityMapV3Response(parse_response(self._client_secret, answer, envelope.nonce), identity_map_input)


def map_batch(conf: Uid2Settings, batch: Sequence[Item]) -> BatchResult:
    """One request through the SDK, retried on 429/5xx/network errors and timeouts; raises Uid2Error when it
    gives up."""
    client = TimedIdentityMapV3Client(conf.base_url, conf.api_key, conf.secret_key, timeout=conf.timeout)
    waited = 0.0
    for attempt in range(1, conf.max_retries + 2):
        identity_input = IdentityMapV3Input()
        for item in batch:
            if item.kind == "email":
                identity_input.with_hashed_email(item.hashed)
            else:
                identity_input.with_hashed_phone(item.hashed)
        try:
            response = client.generate_identity_map(identity_input)
        except urllib.error.HTTPError as exc:
            if exc.code not in RETRY_STATUSES or attempt > conf.max_retries:
                raise Uid2Error(_http_message(exc)) from None
            delay = _retry_after(exc)
            delay = backoff(attempt, conf.backoff_base, conf.backoff_cap) if delay is None else delay
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            if attempt > conf.max_retries:
                reason = getattr(exc, "reason", exc)
                if isinstance(reason, TimeoutError) or isinstance(exc, TimeoutError):
                    reason = f"no answer within {conf.timeout:g} s ({attempt} attempt(s))"
                raise Uid2Error(f"the UID2 operator cannot be reached: {reason}") from None
            delay = backoff(attempt, conf.backoff_base, conf.backoff_cap)
        except ValueError as exc:  # the SDK's envelope/status checks (wrong secret, nonce mismatch, status)
            raise Uid2Error(f"the UID2 operator's answer was refused: {exc}") from None
        else:
            return BatchResult(_outcomes(batch, response), attempts=attempt, waited=waited)
        logger.warning("uid2: batch of %s retried in %.1f s (attempt %s)", len(batch), delay, attempt)
        conf.sleep(delay)
        waited += delay
    raise Uid2Error("unreachable")  # pragma: no cover


def _http_message(exc: urllib.error.HTTPError) -> str:
    try:
        body = exc.read().decode("utf-8", "replace")[:300]
    except Exception:  # noqa: BLE001 - the body is only a hint
        body = ""
    return f"the UID2 operator answered HTTP {exc.code}" + (f": {body}" if body else "")


def _outcomes(batch: Sequence[Item], response: object) -> list[Outcome]:
    mapped = response.mapped_identities  # type: ignore[attr-defined]
    unmapped = response.unmapped_identities  # type: ignore[attr-defined]
    out = []
    for item in batch:
        if (hit := mapped.get(item.hashed)) is not None:
            out.append(
                Outcome(
                    item.kind,
                    item.hashed,
                    "mapped",
                    uid2=hit.current_raw_uid,
                    previous=hit.previous_raw_uid or "",
                    refresh_from=hit.refresh_from,
                )
            )
        elif (miss := unmapped.get(item.hashed)) is not None:
            status = "optout" if miss.reason == UnmappedIdentityReason.OPTOUT else "invalid"
            out.append(Outcome(item.kind, item.hashed, status, raw_reason=miss.raw_reason))
        else:
            out.append(Outcome(item.kind, item.hashed, "invalid", raw_reason="missing from the answer"))
    return out


def batches(items: Iterable[Item], size: int) -> Iterator[list[Item]]:
    batch: list[Item] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def map_all(conf: Uid2Settings, items: Iterable[Item]) -> Iterator[BatchResult]:
    """Map every item, `conf.parallel` batches in flight; results come back as batches finish.

    A batch that fails after its retries stops the run (Uid2Error) once the batches in flight finish;
    the ones already yielded stay recorded, so a re-run only maps what is left.
    """
    pending: set[Future[BatchResult]] = set()
    source = batches(items, conf.batch_size)
    with ThreadPoolExecutor(max_workers=conf.parallel, thread_name_prefix="uid2") as pool:
        for batch in source:
            pending.add(pool.submit(map_batch, conf, batch))
            if len(pending) >= conf.parallel:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                yield from _collect(done, pending)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            yield from _collect(done, pending)


def _collect(done: set[Future[BatchResult]], pending: set[Future[BatchResult]]) -> Iterator[BatchResult]:
    for future in done:
        if (exc := future.exception()) is not None:
            for other in pending:
                other.cancel()
            raise exc
        yield future.result()
