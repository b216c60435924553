"""Hiring stages as a managed list: one spelling per stage, in pipeline order.

Imports and the ATS write stages however their users typed them ("Onsite", "on-site",
"On site"); each is stored under the list's spelling, so a segment on a stage finds everyone
at it and the builder can offer the list instead of a text box.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from nurture.core.errors import NotFound, ValidationError
from nurture.models import Candidate, Stage
from nurture.models.base import rows_changed

NAME_LENGTH = 100


def stage_key(name: str) -> str:
    """The same stage however it is spelt: "On-site", "onsite " and "On site" are one."""
    return re.sub(r"[^a-z0-9]", "", (name or "").lower())


_CACHE = "nurture.stage_keys"


def _known(session: Session, fresh: bool = False) -> dict[str, str]:
    """Stage key -> the list's spelling, read once per session (an import asks per row)."""
    known = session.info.get(_CACHE)
    if known is None or fresh:
        known = {stage_key(name): name for name in session.scalars(select(Stage.name))}
        session.info[_CACHE] = known
    return known


def canonical(session: Session, name: str, now: datetime) -> str:
    """The list's spelling of ``name``, adding it at the end of the list when it is new."""
    name = " ".join((name or "").split())[:NAME_LENGTH]
    key = stage_key(name)
    if not key:
        return name
    found = _known(session).get(key) or _known(session, fresh=True).get(key)
    if found is not None:
        return found
    last = session.scalar(select(func.max(Stage.position)))
    session.add(Stage(name=name, position=(last or 0) + 1, created_at=now))
    session.flush()
    session.info[_CACHE][key] = name
    return name


@dataclass(frozen=True)
class StageRow:
    """A stage with how many candidates are at it."""

    id: int
    name: str
    position: int
    candidates: int


def list_stages(session: Session) -> list[StageRow]:
    """Every stage in pipeline order, with its candidate count."""
    counts = dict(
        session.execute(
            select(Candidate.stage, func.count())
            .where(Candidate.stage != "")
            .group_by(Candidate.stage)
        ).all()
    )
    return [
        StageRow(stage.id, stage.name, stage.position, counts.get(stage.name, 0))
        for stage in session.scalars(select(Stage).order_by(Stage.position, Stage.name))
    ]


def names(session: Session) -> list[str]:
    """The stage names in pipeline order."""
    return list(session.scalars(select(Stage.name).order_by(Stage.position, Stage.name)))


def rename(session: Session, stage_id: int, new_name: str) -> tuple[str, int]:
    """Rename a stage, or merge it into the stage already spelt that way; returns (the name
    candidates now carry, how many moved). Every candidate at it moves in one UPDATE."""
    stage = session.get(Stage, stage_id)
    if stage is None:
        raise NotFound(f"no stage {stage_id}")
    new_name = " ".join((new_name or "").split())
    if not new_name:
        raise ValidationError("name is required", {"name": "type the stage's name"})
    if len(new_name) > NAME_LENGTH:
        raise ValidationError("name too long", {"name": f"at most {NAME_LENGTH} characters"})
    target = next(
        (
            other
            for other in session.scalars(select(Stage).where(Stage.id != stage.id))
            if stage_key(other.name) == stage_key(new_name) or other.name == new_name
        ),
        None,
    )
    old = stage.name
    if target is not None:
        new_name = target.name
        session.delete(stage)
    else:
        stage.name = new_name
    moved = session.execute(
        update(Candidate)
        .where(Candidate.stage == old)
        .values(stage=new_name)
        .execution_options(synchronize_session=False)
    )
    session.flush()
    session.info.pop(_CACHE, None)
    return new_name, rows_changed(moved)


def move(session: Session, stage_id: int, offset: int) -> None:
    """Move a stage one place earlier (-1) or later (+1) in the pipeline."""
    ordered = list(session.scalars(select(Stage).order_by(Stage.position, Stage.name)))
    index = next((i for i, s in enumerate(ordered) if s.id == stage_id), None)
    if index is None:
        raise NotFound(f"no stage {stage_id}")
    other = index + offset
    if 0 <= other < len(ordered):
        ordered[index], ordered[other] = ordered[other], ordered[index]
    for position, stage in enumerate(ordered):
        stage.position = position
    session.flush()
