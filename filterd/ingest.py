"""Accepting messages: judge each in its conversation's order, store it exactly once.

One request (a single message is a batch of one) flows like this:

1. every text is checked (size, emptiness) before anything is judged or stored;
2. ``(conversation_id, message_id)`` keys already stored are answered from the store: a
   retry gets the first verdict back and counts nothing twice (every step works inside the
   caller's tenant: two tenants' "c1" are two conversations);
3. each conversation's state and version are read, and the new messages are judged in
   rounds (round *k* holds the *k*-th new message of every conversation, so one model call
   serves many conversations while each conversation still sees its messages in order);
4. each conversation's messages, new state and outbox rows are written in one transaction
   that checks the version judged from. If another request wrote that conversation in
   between, the write is refused and those messages go round again from step 2, so
   concurrent messages never lose a strike and concurrent retries never double-count.

With a :class:`~filterd.originals.Sealer` (``FILTERD_STORE_ORIGINALS``), each message's
original text is encrypted here and written in the same transaction as the message; the
store never sees the plaintext.

Agent and bot messages are judged (so their text is masked the same way) and stored, but
they leave the conversation state as it was, are not routed and are not delivered.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from filterd.config import Settings
from filterd.errors import (
    BatchTooLargeError,
    ConflictError,
    InputError,
    StaleStateError,
    TextTooLongError,
)
from filterd.metrics import Metrics
from filterd.originals import Sealer
from filterd.pipeline import Filter, validate_text
from filterd.route.conversation import ConversationState
from filterd.store.base import (
    DEFAULT_TENANT,
    ConversationWrite,
    NewDelivery,
    NewMessage,
    Role,
    Snapshot,
    Store,
    StoredMessage,
    utcnow,
)
from filterd.types import Route, Verdict

log = logging.getLogger("filterd.ingest")

_MAX_ROUNDS = 50  # write attempts per request; each round at least one writer wins
_KEY_NAMESPACE = uuid.UUID("6f1c2a52-7d0e-4c55-9a53-0d9c1f6f1e2b")

Key = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Incoming:
    """One message as the API received it (the raw text lives only as long as the request)."""

    conversation_id: str
    message_id: str
    channel: str
    role: Role
    sender_id: str
    text: str
    sent_at: datetime | None = None
    meta: dict[str, Any] | None = None

    @property
    def key(self) -> Key:
        return (self.conversation_id, self.message_id)


@dataclass(frozen=True, slots=True)
class Outcome:
    """A stored message and whether this request only replayed it."""

    message: StoredMessage
    replayed: bool

    def as_dict(self) -> dict[str, Any]:
        """The verdict of INTERFACE.md plus the conversation state it left behind."""
        m = self.message
        return {**m.verdict,
                "conversation": {"id": m.conversation_id, **m.state_after.as_dict()}}


@dataclass(frozen=True, slots=True)
class _Judged:
    item: Incoming
    verdict: Verdict
    before: ConversationState
    after: ConversationState


def scoped_id(tenant: str, conversation_id: str) -> str:
    """A conversation id unique across tenants: ``tenant/id``, or the bare id in the default
    tenant (so its delivery keys and sealed originals stay as they were before tenants).
    Neither part may hold a ``/``, so this never collides."""
    return conversation_id if tenant == DEFAULT_TENANT else f"{tenant}/{conversation_id}"


def delivery_key(kind: str, conversation_id: str, message_id: str,
                 tenant: str = DEFAULT_TENANT) -> str:
    """The ``Idempotency-Key`` of a webhook call: stable across retries and restarts."""
    cid = scoped_id(tenant, conversation_id)
    return uuid.uuid5(_KEY_NAMESPACE, f"{kind}\n{cid}\n{message_id}").hex


class Ingestor:
    """Judges and stores messages; see the module docstring for the guarantees."""

    def __init__(
        self,
        filter: Filter,
        store: Store,
        settings: Settings,
        metrics: Metrics,
        *,
        on_delivery: Callable[[], None] | None = None,
        clock: Callable[[], datetime] = utcnow,
        sealer: Sealer | None = None,
        on_stored: Callable[[StoredMessage], None] | None = None,
    ) -> None:
        self.filter = filter
        self.store = store
        self.settings = settings
        self.metrics = metrics
        self.on_delivery = on_delivery
        self.clock = clock
        self.sealer = sealer  # None: originals are not kept
        self.on_stored = on_stored  # told of each new message once it is committed
        standard = filter.policy.queues.standard.priority
        self._not_routed = {
            role: Route("none", standard, (), f"{role} message: stored, not routed")
            for role in ("agent", "bot")
        }

    # ------------------------------------------------------------------ public

    def ingest(self, items: Sequence[Incoming], *, batch: bool = False,
               tenant: str = DEFAULT_TENANT) -> list[Outcome]:
        """Judge and store ``items`` in ``tenant``'s conversations; outcomes in input order
        (duplicates replay the first)."""
        self._check(items, batch)
        t0 = time.perf_counter()
        first: dict[Key, Incoming] = {}
        for item in items:
            first.setdefault(item.key, item)
        done: dict[Key, Outcome] = {}
        pending = dict(first)
        for round_ in range(_MAX_ROUNDS):
            for key, stored in self.store.find_messages(tenant, list(pending)).items():
                done[key] = Outcome(stored, replayed=True)
                del pending[key]
                self.metrics.replays.inc()
            if not pending:
                break
            plan = self._plan(tenant, list(pending.values()))
            for write, judged, stored_list in self._write_all(tenant, plan):
                for j, stored in zip(judged, stored_list, strict=True):
                    done[j.item.key] = Outcome(stored, replayed=False)
                    del pending[j.item.key]
                    self._observe(j)
                    self._announce(stored)
                if write.deliveries and self.on_delivery is not None:
                    self.on_delivery()
            if pending:
                time.sleep(random.uniform(0, 0.002 * (round_ + 1)))  # let the winner finish
        if pending:
            raise ConflictError(
                f"{len(pending)} message(s) could not be stored: their conversation is being "
                "written by many requests at once. Retry the request; it is idempotent.")
        self.metrics.ingest_seconds.observe(time.perf_counter() - t0)
        seen: set[Key] = set()
        out = []
        for item in items:
            o = done[item.key]
            out.append(o if item.key not in seen else Outcome(o.message, replayed=True))
            seen.add(item.key)
        return out

    # ------------------------------------------------------------------ steps

    def _write_all(self, tenant: str, plan: list[tuple[ConversationWrite, list[_Judged]]]
                   ) -> Iterator[tuple[ConversationWrite, list[_Judged], list[StoredMessage]]]:
        """Every conversation's write of a round in one transaction; if one of them is stale
        (another writer got there first), each on its own, so the others still commit and
        only the stale ones go round again."""
        if len(plan) > 1:
            try:
                done = self.store.write_many(tenant, [w for w, _ in plan])
            except StaleStateError:
                pass
            else:
                for (w, judged), stored in zip(plan, done, strict=True):
                    yield w, judged, stored
                return
        for w, judged in plan:
            try:
                stored_list = self.store.write(tenant, w)
            except StaleStateError:
                continue  # someone wrote this conversation meanwhile: go round again
            yield w, judged, stored_list

    def _check(self, items: Sequence[Incoming], batch: bool) -> None:
        s = self.settings
        if len(items) > s.batch_max_messages:
            raise BatchTooLargeError(
                f"The batch holds {len(items)} messages; the limit is {s.batch_max_messages} "
                "(FILTERD_BATCH_MAX_MESSAGES). Split it.")
        if batch and not items:
            raise InputError("The batch holds no messages.")
        for n, item in enumerate(items):
            where = f"messages[{n}]: " if batch else ""
            size = len(item.text.encode("utf-8", errors="surrogatepass"))
            if size > s.max_message_bytes:
                raise TextTooLongError(
                    f"{where}'text' is {size:,} bytes of UTF-8; the limit is "
                    f"{s.max_message_bytes:,} (FILTERD_MAX_MESSAGE_BYTES).")
            try:
                validate_text(item.text, s.max_text_chars)
            except InputError as e:
                raise InputError(f"{where}{e}") from e

    def _plan(self, tenant: str, items: list[Incoming]
              ) -> list[tuple[ConversationWrite, list[_Judged]]]:
        """Judge pending items against fresh snapshots; one write per conversation."""
        by_conv: dict[str, list[Incoming]] = {}
        for item in items:
            by_conv.setdefault(item.conversation_id, []).append(item)
        snaps = self.store.snapshots(tenant, list(by_conv))
        judged = self._judge(by_conv, snaps)
        now = self.clock()
        return [self._write(tenant, cid, snaps[cid], rows, now)
                for cid, rows in judged.items()]

    def _judge(self, by_conv: dict[str, list[Incoming]],
               snaps: dict[str, Snapshot]) -> dict[str, list[_Judged]]:
        states = {cid: snaps[cid].state for cid in by_conv}
        out: dict[str, list[_Judged]] = {cid: [] for cid in by_conv}
        for k in range(max(len(v) for v in by_conv.values())):
            round_ = [(cid, msgs[k]) for cid, msgs in by_conv.items() if k < len(msgs)]
            results, stages = self.filter.judge_timed([it.text for _, it in round_],
                                                      [it.message_id for _, it in round_],
                                                      [states[cid] for cid, _ in round_])
            self.metrics.observe_stages(stages)
            for (cid, item), j in zip(round_, results, strict=True):
                before = states[cid]
                if item.role == "customer":
                    verdict, after = j.verdict, j.state
                else:
                    verdict, after = replace(j.verdict, route=self._not_routed[item.role]), before
                states[cid] = after
                out[cid].append(_Judged(item, verdict, before, after))
        return out

    def _write(self, tenant: str, cid: str, snap: Snapshot, rows: list[_Judged],
               now: datetime) -> tuple[ConversationWrite, list[_Judged]]:
        messages, deliveries = [], []
        for j in rows:
            verdict = j.verdict.as_dict()
            escalated_here = j.before.escalated is None and j.after.escalated is not None
            sealed = (self.sealer.seal(scoped_id(tenant, cid), j.item.message_id, j.item.text)
                      if self.sealer is not None else None)
            messages.append(NewMessage(
                message_id=j.item.message_id, channel=j.item.channel, role=j.item.role,
                sender_id=j.item.sender_id, verdict=verdict, state_after=j.after,
                escalated_here=escalated_here, received_at=now, sent_at=j.item.sent_at,
                meta=j.item.meta, sealed_original=sealed))
            if j.item.role == "customer":
                deliveries.extend(self._deliveries(tenant, j, verdict))
        write = ConversationWrite(
            conversation_id=cid, channel=rows[0].item.channel, expected_version=snap.version,
            messages=tuple(messages), state=rows[-1].after, deliveries=tuple(deliveries))
        return write, rows

    def _deliveries(self, tenant: str, j: _Judged, verdict: dict[str, Any]
                    ) -> list[NewDelivery]:
        s, item = self.settings, j.item
        queue = j.verdict.route.queue
        targets: list[tuple[Literal["console", "alert"], str]] = []
        console = s.console_webhook_urls.get(queue) or s.console_webhook_url
        if console is not None:
            targets.append(("console", str(console)))
        if queue in s.alert_queues and s.alert_webhook_url is not None:
            targets.append(("alert", str(s.alert_webhook_url)))
        out = []
        for kind, url in targets:
            payload = {
                "event": "alert" if kind == "alert" else "message",
                "tenant": tenant,
                "conversation_id": item.conversation_id,
                "message_id": item.message_id,
                "channel": item.channel,
                "sender": {"role": item.role, "id": item.sender_id},
                "sent_at": item.sent_at.isoformat() + "Z" if item.sent_at else None,
                "verdict": verdict,  # masked text only: the raw text never leaves the request
                "conversation": {"id": item.conversation_id, **j.after.as_dict()},
            }
            out.append(NewDelivery(item.message_id, kind, url,
                                   delivery_key(kind, item.conversation_id, item.message_id,
                                                tenant),
                                   payload))
        return out

    def _announce(self, stored: StoredMessage) -> None:
        if self.on_stored is None:
            return
        try:
            self.on_stored(stored)
        except Exception:  # a listener's failure must not fail a committed message
            log.exception("on_stored failed for %s/%s", stored.conversation_id,
                          stored.message_id)

    def _observe(self, j: _Judged) -> None:
        item, v = j.item, j.verdict
        strike = j.after.strikes > j.before.strikes
        escalated = j.after.escalated if j.before.escalated is None else None
        self.metrics.observe_message(item.channel, item.role, v, strike, escalated)
        log.info("stored %s/%s role=%s chars=%d category=%s level=%d queue=%s",
                 item.conversation_id, item.message_id, item.role, len(item.text), v.category,
                 v.level, v.route.queue)
