"""The shapes of what travels between the layers, as TypedDicts: the engine's events and result, and
the job layer's run record. They stay plain JSON dicts (the store keeps JSON, events cross process
and Ray boundaries); the types say which keys exist and what they hold. The engine builds its events
and results as these types (trainers/engine/train.py), and tests/test_records.py checks every event,
curve point, result and record of a real run against them, key by key.

Errors are percentages (0-100) everywhere; times are Unix seconds unless named `_at` in ISO text
(inside `Provenance`).
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

# --- the engine's events (train(..., on_event=...)) ----------------------------------------------


class StartEvent(TypedDict):
    type: Literal["start"]
    iteration: int  # where this attempt starts (> 0: resumed from a checkpoint)
    total: int
    device: str
    device_name: str
    precision: str
    parameters: int
    dataset: str  # the dataset's label ("CIFAR-10 (JPEG copy)")
    resumed: bool
    channels_last: bool
    step_mode: str
    notes: list[str]
    packed: NotRequired[int]  # packed runs only: networks trained together (seed packing)


class MetricsEvent(TypedDict):
    type: Literal["metrics"]
    iteration: int
    epoch: float
    train_loss: float
    train_error: float
    lr: float
    images_per_s: float
    elapsed_s: float
    eta_s: float
    aggregate_images_per_s: NotRequired[float]  # packed runs only: all networks together


class EvalEvent(TypedDict):
    type: Literal["eval"]
    iteration: int
    epoch: float
    test_error: float
    test_loss: float


class CheckpointEvent(TypedDict):
    type: Literal["checkpoint"]
    iteration: int
    path: str


class Provenance(TypedDict):
    code_version: str
    torch: str
    python: str
    device: str
    device_name: str
    precision: str
    channels_last: bool
    step_mode: str
    dataset: str
    hostname: str
    started_at: str
    finished_at: str
    resumed: bool
    pid: int
    packed: NotRequired[int]  # packed runs only: networks trained together
    packed_with: NotRequired[list[str]]  # packed runs only: their keys, in order
    recipe: dict[str, Any]  # the choices the paper is silent on, and the numerics in force (engine/recipe.py)


class Result(TypedDict):
    """What train() returns and writes to result.json (and the store keeps as `record.result`)."""

    key: str
    status: str  # ENGINE_STATUSES (trainers/core/results.py); "fail" is decided where shown (shown_status)
    test_error: float | None
    test_loss: float | None
    iterations: int
    epochs: float
    train_loss: float
    wall_time_s: float
    parameters: int
    config: dict[str, Any]
    provenance: Provenance


class EndEvent(TypedDict):
    type: Literal["end"]
    status: str
    result: Result


class HeartbeatEvent(TypedDict):
    """Not the engine's: a Ray task relays its lease this way (trainers/runs/backends/ray_task.py)."""

    type: Literal["heartbeat"]
    time: float  # Unix seconds


Event = StartEvent | MetricsEvent | EvalEvent | CheckpointEvent | EndEvent
CurvePoint = MetricsEvent | EvalEvent  # what the store keeps as a run's curve


# --- the job layer's run record (trainers/runs/store.py) ------------------------------------------


class RunRecord(TypedDict, total=False):
    key: str
    config: dict[str, Any]  # RunConfig.to_dict()
    label: str
    status: str  # STATUSES (trainers/core/results.py)
    progress: float  # 0..1
    iteration: int
    total: int
    eta_s: float | None
    images_per_s: float | None
    device: str | None
    device_name: str | None
    parameters: int | None
    dataset: str | None
    attempt: int  # fences stale workers: only the current attempt may write
    restarts: int
    created_at: float
    updated_at: float
    queued_at: float | None
    started_at: float | None
    finished_at: float | None
    heartbeat_at: float | None  # the lease; None until the worker's first heartbeat
    error: str | None
    last_failure: str | None
    worker_error: str | None
    result: Result | None
    backend: str  # "local" | "ray" | "import"
    slot: str | None
    pid: int | None
    host: str | None
    log: str | None
    cancel_requested: bool
    cancel_requested_at: float | None
    test_error: float | None
    train_loss: float | None
    checkpoint_iteration: int | None
    curve_len: int
    packed_with: list[str] | None
    resumed_at: int | None
    imported_at: float
    notes: list[str]  # the engine's notes (e.g. a checkpoint set aside), kept across attempts
    tags: list[str]  # the user's, sorted


def new_record(key: str, config: dict[str, Any], label: str, backend: str, t: float) -> RunRecord:
    """A queued run's first record (what `Store.create` claims)."""
    return RunRecord(
        key=key,
        config=config,
        label=label,
        status="queued",
        progress=0.0,
        iteration=0,
        total=config.get("iterations", 0),
        eta_s=None,
        images_per_s=None,
        device=None,
        device_name=None,
        attempt=0,
        restarts=0,
        created_at=t,
        updated_at=t,
        queued_at=t,
        started_at=None,
        finished_at=None,
        heartbeat_at=None,
        error=None,
        last_failure=None,
        worker_error=None,
        result=None,
        backend=backend,
        slot=None,
        pid=None,
        host=None,
        log=None,
        cancel_requested=False,
        cancel_requested_at=None,
        test_error=None,
        train_loss=None,
        checkpoint_iteration=None,
        curve_len=0,
    )
