"""The watcher's HTTP surface.

Read: ``/metrics``, ``/healthz``, ``/readyz``, ``/api/incidents``, ``/api/incidents/{id}``,
``/api/silences``, ``/api/pages``, ``/api/actions``. Mutations (``POST /api/silences``,
``DELETE /api/silences/{id}``, ``POST /api/incidents/{id}/acknowledge``) need
``Authorization: Bearer <server.api_token>``; without a configured token they are refused.
``POST /hooks/alertmanager`` takes Alertmanager's webhook (bearer ``server.hooks_token``, else
``server.api_token``) and turns firing alerts into classifier signals. ``/metrics`` needs
``server.metrics_token`` when one is set. Tokens are compared in constant time; a refused
request is logged with its path and reason, never with the header or the token.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, SecretStr, ValidationError

from hotdash_watch.config import describe_errors
from hotdash_watch.log_output import scrubber, secret_values
from hotdash_watch.model.findings import Signal
from hotdash_watch.model.incident import State, incident_as_dict
from hotdash_watch.model.severity import Severity
from hotdash_watch.pipeline import Pipeline

__all__ = ["APP_LABELS", "OWN_ALERT_PREFIX", "SEVERITY_LABELS", "HookOutcome",
           "alert_severity", "make_app"]

log = structlog.get_logger("hotdash_watch.server")

PIPELINE: web.AppKey[Pipeline] = web.AppKey("pipeline", Pipeline)
STARTED_AT: web.AppKey[float] = web.AppKey("started_at", float)


def _error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text format; behind ``server.metrics_token`` when one is set."""
    token = request.app[PIPELINE].settings.server.metrics_token
    if token is not None and (refused := _check_bearer(request, token)) is not None:
        return refused
    body = generate_latest(request.app[PIPELINE].metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def healthz(request: web.Request) -> web.Response:
    """Alive when the scheduler ran an evaluation pass within ``timers.heartbeat_stale_s``."""
    p = request.app[PIPELINE]
    now = p.clock.timestamp()
    stale_after = p.settings.timers.heartbeat_stale_s
    last = p.last_tick if p.last_tick is not None else request.app[STARTED_AT]
    age = now - last
    body: dict[str, Any] = {"status": "ok" if age <= stale_after else "stale",
                            "last_tick_age_s": round(age, 1), "stale_after_s": stale_after,
                            "ticked": p.last_tick is not None}
    outbox = getattr(p.responder, "outbox", None)
    if outbox is not None:
        # Paging trouble is reported here but does not fail liveness: restarting the watcher
        # would not mend a receiver, and the outbox keeps every page until it is delivered.
        body["paging"] = outbox.paging_status()
    return web.json_response(body, status=200 if age <= stale_after else 503)


async def readyz(request: web.Request) -> web.Response:
    p = request.app[PIPELINE]
    store_ok = await p.store.ping()
    body = {"status": "ready" if store_ok else "not ready", "config": "loaded",
            "store": "ok" if store_ok else "unreachable", "apps": sorted(p.apps)}
    return web.json_response(body, status=200 if store_ok else 503)


async def list_incidents(request: web.Request) -> web.Response:
    p = request.app[PIPELINE]
    q = request.query
    try:
        limit = int(q.get("limit", "50"))
        if not 1 <= limit <= 1000:
            raise ValueError
    except ValueError:
        return _error(400, f"limit must be an integer from 1 to 1000, got {q.get('limit')!r}")
    state = q.get("state")
    allowed = [s.value for s in State] + ["open"]
    if state is not None and state not in allowed:
        return _error(400, f"state must be one of {', '.join(allowed)}, got {state!r}")
    if state == "open":
        found = [i for i in await p.store.open_incidents()
                 if q.get("app") in (None, i.app)][:limit]
    else:
        found = await p.store.list_incidents(app=q.get("app"), state=state, limit=limit)
    return web.json_response({"incidents": [incident_as_dict(i, timeline=False) for i in found]})


async def get_incident(request: web.Request) -> web.Response:
    inc = await request.app[PIPELINE].store.get_incident(request.match_info["id"])
    if inc is None:
        return _error(404, f"no incident {request.match_info['id']!r}")
    return web.json_response(incident_as_dict(inc))


def _digest(value: str) -> bytes:
    # Both sides hashed first: compare_digest then takes the same time whatever the lengths.
    return hashlib.sha256(value.encode()).digest()


def _check_bearer(request: web.Request, token: SecretStr) -> web.Response | None:
    """None when ``Authorization: Bearer <token>`` matches; otherwise a 401 to send.

    The refusal is logged with the path and why (missing, scheme, mismatch), never the header.
    """
    given = request.headers.get("Authorization")
    scheme, _, value = (given or "").strip().partition(" ")
    if hmac.compare_digest(_digest(value.strip()), _digest(token.get_secret_value())) \
            and scheme.lower() == "bearer":
        return None
    why = "missing" if not given else "scheme" if scheme.lower() != "bearer" else "mismatch"
    log.warning("request_unauthorized", method=request.method, path=request.path,
                remote=request.remote, reason=why)
    return web.json_response({"error": "missing or wrong bearer token"}, status=401,
                             headers={"WWW-Authenticate": "Bearer"})


def _authorized(request: web.Request) -> web.Response | None:
    """None when the bearer token matches; otherwise the refusal to send."""
    token = request.app[PIPELINE].settings.server.api_token
    if token is None:
        return _error(403, "mutations are disabled: set server.api_token "
                           "(HOTDASH_WATCH_SERVER__API_TOKEN) to enable them")
    return _check_bearer(request, token)


async def _json_body(request: web.Request) -> dict[str, Any] | web.Response:
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        return _error(400, "the body must be a JSON object")
    if not isinstance(body, dict):
        return _error(400, "the body must be a JSON object")
    return body


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


def _silence_json(s: Any, now: float) -> dict[str, Any]:
    return {"id": s.id, "app": s.app, "starts_at": _iso(s.starts_at), "ends_at": _iso(s.ends_at),
            "author": s.author, "reason": s.reason,
            "suspend_mitigation": s.suspend_mitigation, "active": s.active(now)}


async def list_silences(request: web.Request) -> web.Response:
    p = request.app[PIPELINE]
    now = p.clock.timestamp()
    rows = await p.store.list_silences()
    return web.json_response({"silences": [_silence_json(s, now) for s in rows]})


async def create_silence(request: web.Request) -> web.Response:
    """``{"app": "<name>|*", "duration_s": 3600, "author": "...", "reason": "...",
    "suspend_mitigation": false}``; every silence has an end and an author."""
    if (refused := _authorized(request)) is not None:
        return refused
    body = await _json_body(request)
    if isinstance(body, web.Response):
        return body
    p = request.app[PIPELINE]
    app = body.get("app")
    if app != "*" and app not in p.apps:
        return _error(400, f"app must be '*' or one of {', '.join(sorted(p.apps))}, got {app!r}")
    author = body.get("author")
    if not isinstance(author, str) or not author.strip():
        return _error(400, "author is required: who is silencing")
    duration = body.get("duration_s")
    if not isinstance(duration, (int, float)) or isinstance(duration, bool) \
            or not 0 < duration <= 7 * 86400:
        return _error(400, f"duration_s must be a number of seconds from 1 to 604800 (7 days), "
                           f"got {duration!r}")
    reason = body.get("reason", "")
    suspend = body.get("suspend_mitigation", False)
    if not isinstance(reason, str) or not isinstance(suspend, bool):
        return _error(400, "reason must be a string and suspend_mitigation a boolean")
    now = p.clock.timestamp()
    silence = await p.store.add_silence(app, now, now + duration, author=author.strip(),
                                        reason=reason, created_at=now,
                                        suspend_mitigation=suspend)
    log.info("silence_created", app=app, author=author, ends_in_s=duration,
             suspend_mitigation=suspend, silence_id=silence.id)
    return web.json_response(_silence_json(silence, now), status=201)


async def end_silence(request: web.Request) -> web.Response:
    if (refused := _authorized(request)) is not None:
        return refused
    p = request.app[PIPELINE]
    try:
        silence_id = int(request.match_info["id"])
    except ValueError:
        return _error(400, f"silence id must be an integer, got {request.match_info['id']!r}")
    now = p.clock.timestamp()
    ended = await p.store.end_silence(silence_id, now)
    if ended is None:
        return _error(404, f"no active silence {silence_id}")
    log.info("silence_ended", silence_id=silence_id)
    return web.json_response(_silence_json(ended, now))


async def acknowledge(request: web.Request) -> web.Response:
    """``{"author": "..."}``: a person has the incident; recorded on its timeline."""
    if (refused := _authorized(request)) is not None:
        return refused
    body = await _json_body(request)
    if isinstance(body, web.Response):
        return body
    author = body.get("author")
    if not isinstance(author, str) or not author.strip():
        return _error(400, "author is required: who acknowledges")
    p = request.app[PIPELINE]
    inc = await p.timeline.acknowledge(request.match_info["id"], author.strip())
    if inc is None:
        return _error(404, f"no open incident {request.match_info['id']!r}")
    return web.json_response(incident_as_dict(inc))


async def list_pages(request: web.Request) -> web.Response:
    p = request.app[PIPELINE]
    rows = await p.store.list_pages(incident_id=request.query.get("incident_id"), limit=200)
    return web.json_response({"pages": [
        {"id": r.id, "key": r.key, "channel": r.channel, "incident_id": r.incident_id,
         "event": r.event, "severity": r.severity, "state": str(r.state),
         "attempts": r.attempts, "created_at": _iso(r.created_at), "sent_at": _iso(r.sent_at),
         "last_error": r.last_error, "subject": r.page.get("subject")} for r in rows]})


async def list_actions(request: web.Request) -> web.Response:
    """Mitigation steps, newest first: done, failed, vetoed (with the guard), dry-run, deferred."""
    p = request.app[PIPELINE]
    q = request.query
    try:
        limit = int(q.get("limit", "100"))
        days = float(q.get("days", "7"))
        if not 1 <= limit <= 1000 or not 0 < days <= 366:
            raise ValueError
    except ValueError:
        return _error(400, "limit must be an integer from 1 to 1000 and days a number of days "
                      f"above 0 and up to 366, got limit={q.get('limit')!r} days={q.get('days')!r}")
    since = p.clock.timestamp() - days * 86400
    rows = await p.store.actions_since(since, app=q.get("app"),
                                       incident_id=q.get("incident_id"))
    newest = sorted(rows, key=lambda a: (a.at, a.id or 0), reverse=True)[:limit]
    return web.json_response({"actions": [
        {**a.as_dict(), "at": _iso(a.at), "ended_at": _iso(a.ended_at)} for a in newest]})


# -- /hooks/alertmanager ---------------------------------------------------------------------

APP_LABELS = ("target_app", "app", "fly_app")
"""Labels naming the watched app, first present wins. ``target_app`` comes first: Fly's
Prometheus overwrites ``app`` with the name of the app it scraped."""

SEVERITY_LABELS: dict[str, Severity] = {
    "sev-1": Severity.SEV1, "sev1": Severity.SEV1, "1": Severity.SEV1,
    "critical": Severity.SEV1,
    "sev-2": Severity.SEV2, "sev2": Severity.SEV2, "2": Severity.SEV2,
    "warning": Severity.SEV2, "major": Severity.SEV2,
    "sev-3": Severity.SEV3, "sev3": Severity.SEV3, "3": Severity.SEV3,
    "info": Severity.SEV3, "minor": Severity.SEV3,
}
"""Values of an alert's ``severity`` label (compared without case) and the level they signal."""

OWN_ALERT_PREFIX = "Hotdash"
"""Alerts named ``Hotdash*`` are the watcher's own: its pages through an Alertmanager channel
(``HotdashIncident``) and the rules of deploy/prometheus/alerts.yml. Taken back as signals they
would hold the watcher's own incidents open (its SEV-1 page keeping its SEV-1 alive)."""

SUMMARY_MAX = 300


def alert_severity(value: str | None) -> Severity | None:
    """The runbook level a ``severity`` label value names, or None (see SEVERITY_LABELS)."""
    return None if value is None else SEVERITY_LABELS.get(value.strip().lower())


class HookOutcome(StrEnum):
    """What became of one alert of a webhook."""

    SIGNALLED = "signalled"  # firing: a signal to the classifier until resolved or expired
    CLEARED = "cleared"  # resolved: its signal is withdrawn (if it was in force)
    OWN_ALERT = "own_alert"
    NO_APP_LABEL = "no_app_label"
    APP_NOT_WATCHED = "app_not_watched"
    NO_SEVERITY = "no_severity"
    UNKNOWN_SEVERITY = "unknown_severity"


class AlertmanagerAlert(BaseModel):
    """One alert of Alertmanager's webhook (version 4). Unknown fields are allowed."""

    model_config = ConfigDict(extra="allow")

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: AwareDatetime | None = None  # Alertmanager's field names, as sent
    endsAt: AwareDatetime | None = None
    fingerprint: str | None = Field(None, max_length=128)
    generatorURL: str | None = None


class _WebhookPayload(BaseModel):
    """Alertmanager's webhook body: version "4", receiver, status, alerts, group labels..."""

    model_config = ConfigDict(extra="allow")

    version: Literal["4"] | None = None
    receiver: str | None = None
    status: Literal["firing", "resolved"] | None = None
    alerts: list[AlertmanagerAlert]


@dataclass(frozen=True, slots=True)
class _Verdict:
    """The decision about one alert, with its reason."""

    outcome: HookOutcome
    fingerprint: str
    alertname: str | None
    app: str | None = None
    severity: Severity | None = None
    reason: str = ""


def _alert_key(alert: AlertmanagerAlert) -> str:
    if alert.fingerprint:
        return alert.fingerprint
    labels = json.dumps(sorted(alert.labels.items()), separators=(",", ":"))
    return hashlib.sha256(labels.encode()).hexdigest()[:16]


def _summary(alert: AlertmanagerAlert) -> str:
    name = alert.labels.get("alertname")
    text = alert.annotations.get("summary") or alert.annotations.get("description") or ""
    text = " ".join(text.split())
    summary = f"{name}: {text}" if name and text and text != name else (text or name or "alert")
    return summary if len(summary) <= SUMMARY_MAX else summary[:SUMMARY_MAX - 1] + "…"


def _until(alert: AlertmanagerAlert, now: float, ttl: float) -> float:
    """When a firing alert's signal lapses unless re-sent: its endsAt if that is ahead (at most
    ``ttl`` ahead); otherwise ``ttl`` from now. Alertmanager sends firing alerts without an
    end (0001-01-01) and repeats them every repeat_interval while they fire."""
    ends = alert.endsAt.timestamp() if alert.endsAt is not None else None
    return min(ends, now + ttl) if ends is not None and ends > now else now + ttl


def _apply_alert(pipeline: Pipeline, alert: AlertmanagerAlert, now: float, ttl: float) -> _Verdict:
    fingerprint = _alert_key(alert)
    key = f"alertmanager:{fingerprint}"
    name = alert.labels.get("alertname")
    app = next((alert.labels[k] for k in APP_LABELS if alert.labels.get(k)), None)
    if name is not None and name.startswith(OWN_ALERT_PREFIX):
        return _Verdict(HookOutcome.OWN_ALERT, fingerprint, name, app,
                        reason=f"alerts named {OWN_ALERT_PREFIX}* come from hotdash-watch "
                               "itself (its pages and rules); as signals they would hold its "
                               "own incidents open")
    if app is None:
        return _Verdict(HookOutcome.NO_APP_LABEL, fingerprint, name,
                        reason=f"no {', '.join(APP_LABELS)} label names a watched app")
    if app not in pipeline.apps:
        return _Verdict(HookOutcome.APP_NOT_WATCHED, fingerprint, name, app,
                        reason=f"app {app!r} is not watched "
                               f"(watched: {', '.join(sorted(pipeline.apps))})")
    if alert.status == "resolved":
        pipeline.intake.clear_signal(app, key)
        return _Verdict(HookOutcome.CLEARED, fingerprint, name, app)
    label = alert.labels.get("severity")
    severity = alert_severity(label)
    if severity is None:
        code = HookOutcome.NO_SEVERITY if label is None else HookOutcome.UNKNOWN_SEVERITY
        got = "no severity label" if label is None else f"severity {label!r} is not known"
        return _Verdict(code, fingerprint, name, app,
                        reason=f"{got}; use one of {', '.join(SEVERITY_LABELS)}")
    until = _until(alert, now, ttl)
    summary = _summary(alert)
    pipeline.intake.put_signal(app, key, Signal(severity, summary, "alertmanager"), until)
    log.info("alert_signal_accepted", app=app, severity=severity.value, alertname=name,
             fingerprint=fingerprint, summary=summary, in_force_s=round(until - now, 1))
    return _Verdict(HookOutcome.SIGNALLED, fingerprint, name, app, severity)


async def alertmanager_hook(request: web.Request) -> web.Response:
    """Alertmanager's webhook (version 4): each firing alert naming a watched app (label
    target_app, app or fly_app) and a severity becomes a classifier signal; a resolved alert
    withdraws it. The whole body is checked before anything is applied."""
    p = request.app[PIPELINE]
    server = p.settings.server
    token = server.hooks_token or server.api_token
    if token is None:
        return _error(403, "the Alertmanager hook is disabled: set server.hooks_token "
                           "(HOTDASH_WATCH_SERVER__HOOKS_TOKEN) or server.api_token to enable it")
    if (refused := _check_bearer(request, token)) is not None:
        return refused
    try:
        raw = await request.json()
    except (ValueError, UnicodeDecodeError):
        raw = None
    if not isinstance(raw, dict):
        return _error(400, "the body must be a JSON object: Alertmanager's webhook payload "
                           '(version "4", with an alerts list)')
    try:
        payload = _WebhookPayload.model_validate(raw)
    except ValidationError as e:
        problems = describe_errors(e)[:10]
        return _error(400, "invalid Alertmanager webhook payload: " + "; ".join(problems),
                      problems=problems)
    now = p.clock.timestamp()
    verdicts = [_apply_alert(p, a, now, server.hook_signal_ttl_s) for a in payload.alerts]
    accepted = sum(v.outcome is HookOutcome.SIGNALLED for v in verdicts)
    cleared = sum(v.outcome is HookOutcome.CLEARED for v in verdicts)
    ignored = [v for v in verdicts
               if v.outcome not in (HookOutcome.SIGNALLED, HookOutcome.CLEARED)]
    log.info("alertmanager_hook", receiver=payload.receiver, alerts=len(verdicts),
             accepted=accepted, resolved=cleared,
             ignored=sorted({v.outcome.value for v in ignored}))
    return web.json_response({
        "accepted": accepted, "resolved": cleared,
        "ignored": [{"fingerprint": v.fingerprint, "alertname": v.alertname, "app": v.app,
                     "code": v.outcome.value, "reason": v.reason} for v in ignored]})


def make_app(pipeline: Pipeline) -> web.Application:
    # The server's own tokens never reach a log line, whoever builds it.
    scrubber.register(secret_values(pipeline.settings))
    app = web.Application()
    app[PIPELINE] = pipeline
    app[STARTED_AT] = pipeline.clock.timestamp()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/api/incidents", list_incidents)
    app.router.add_get("/api/incidents/{id}", get_incident)
    app.router.add_post("/api/incidents/{id}/acknowledge", acknowledge)
    app.router.add_get("/api/silences", list_silences)
    app.router.add_post("/api/silences", create_silence)
    app.router.add_delete("/api/silences/{id}", end_silence)
    app.router.add_get("/api/pages", list_pages)
    app.router.add_get("/api/actions", list_actions)
    app.router.add_post("/hooks/alertmanager", alertmanager_hook)
    return app
