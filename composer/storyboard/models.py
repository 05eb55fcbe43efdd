"""Storyboard models: the storyboard language (version 1) as pydantic data.

Field-level rules live here; rules that need the whole board (unique ids, times
inside their scene, files on disk) are checked by ``storyboard.checks``.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PrivateAttr,
    WithJsonSchema,
    create_model,
    field_validator,
)
from pydantic.fields import FieldInfo

from ..colour.config import ColourSpec
from ..request import GenerationRequest, USER_PARAM_FIELDS
from ..timecode import JSON_PATTERN as TIMECODE_PATTERN
from ..timecode import Timecode


def _parse_timecode(value: Any) -> Timecode:
    try:
        return Timecode.parse(value)
    except ValueError as exc:
        raise ValueError(str(exc)) from None


def _not_negative(t: Timecode) -> Timecode:
    if t.is_negative():
        raise ValueError(f"must not be negative (got {t})")
    return t


def _positive(t: Timecode) -> Timecode:
    if t.is_negative() or t.is_zero():
        raise ValueError(f"must be > 0 (got {t})")
    return t


TimecodeField = Annotated[
    Timecode,
    BeforeValidator(_parse_timecode),
    PlainSerializer(lambda t: str(t), return_type=str),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": TIMECODE_PATTERN},
                {"type": "number", "minimum": 0},
            ],
            "description": "A time: 10s, 1.5s, 250ms, 00:01:02.500 or 240f (frames); a bare number is seconds.",
        }
    ),
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _frames_8k1(v: int) -> int:
    if (v - 1) % 8:
        lo = (v - 1) // 8 * 8 + 1
        raise ValueError(f"must be 8k+1 frames (LTX works on 8-frame chunks), e.g. {lo} or {lo + 8}")
    return v




def _params_model() -> type[BaseModel]:
    """Endpoint fields a storyboard may set, all optional, with the endpoint's own ranges."""
    fields: dict[str, Any] = {}
    for name in USER_PARAM_FIELDS:
        info = GenerationRequest.model_fields[name]
        copy = FieldInfo.merge_field_infos(info, default=None)
        fields[name] = (info.annotation | None, copy)  # type: ignore[operator]
    model = create_model("EndpointParams", __config__=ConfigDict(extra="forbid", frozen=True), **fields)
    model.__doc__ = "Endpoint fields set by the storyboard (any field the planner does not own)."
    return model


if TYPE_CHECKING:
    class EndpointParams(BaseModel):
        """Built at import time by ``_params_model``; the checker sees a plain model."""
else:
    EndpointParams = _params_model()


def params_dict(params: BaseModel | None) -> dict[str, Any]:
    """The fields a ``params`` block actually set, ready to merge into a request."""
    if params is None:
        return {}
    return params.model_dump(mode="json", exclude_unset=True)


class SegmentSpec(_Model):
    """How the planner cuts chains into generations."""

    frames: int = Field(121, ge=17, le=1441, description="Most frames in one generation (8k+1).")
    overlap: int = Field(17, ge=9, le=1433, description="Frames carried from one segment into the next (8k+1).")
    overlap_strength: float = Field(1.0, ge=0.0, le=1.0, description="How strongly carried frames bind.")

    @field_validator("frames", "overlap")
    @classmethod
    def _check_8k1(cls, v: int) -> int:
        return _frames_8k1(v)


class Output(_Model):
    """One resolution, aspect and frame rate for the whole film."""

    resolution: Literal["480p", "720p"] = "720p"
    aspect_ratio: Literal["16:9", "9:16", "1:1"] = "16:9"
    fps: int = Field(24, ge=1, le=60)


class Audio(_Model):
    """A soundtrack muxed under the film, trimmed or padded to its length."""

    file: str
    offset: Annotated[TimecodeField, AfterValidator(_not_negative)] = Field("0s", validate_default=True)
    volume: float = Field(1.0, ge=0.0, le=4.0)
    fade_in: Annotated[TimecodeField, AfterValidator(_not_negative)] = Field("0s", validate_default=True)
    fade_out: Annotated[TimecodeField, AfterValidator(_not_negative)] = Field("0s", validate_default=True)


class RenderSpec(_Model):
    """How a chain's segments depend on each other (see the README's section on bridged rendering)."""

    mode: Literal["sequential", "bridged"] = Field(
        "sequential",
        description="sequential: each segment continues the one before. bridged: every other segment (an "
                    "anchor) is generated independently, pinned by keyframes or a cheap skeleton of the chain, "
                    "then the segments between them (bridges) are conditioned on both neighbours.",
    )
    skeleton_strength: float = Field(1.0, ge=0.0, le=1.0,
                                     description="bridged: how strongly a skeleton frame pins an anchor's first frame.")


class Defaults(_Model):
    negative_prompt: str | None = None
    style: str = ""
    seed: int = Field(0, ge=0, le=2**32 - 1)
    segment: SegmentSpec = SegmentSpec()
    params: EndpointParams = EndpointParams()
    colour: ColourSpec = ColourSpec()
    render: RenderSpec = RenderSpec()


class Keyframe(_Model):
    """An image the film should show at a time (relative to its scene)."""

    at: Annotated[TimecodeField, AfterValidator(_not_negative)]
    image: str
    strength: float = Field(1.0, ge=0.0, le=1.0)
    fit: Literal["cover", "contain"] = "cover"


class Beat(_Model):
    """A prompt change inside a scene, at a time relative to the scene start."""

    at: Annotated[TimecodeField, AfterValidator(_not_negative)]
    prompt: str = Field(min_length=1)


class Crossfade(_Model):
    crossfade: Annotated[TimecodeField, AfterValidator(_positive)]


Transition = Literal["cut", "continue"] | Crossfade
SCENE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class Scene(_Model):
    id: str = Field(pattern=SCENE_ID.pattern, description="Unique name: letters, digits, '-', '_', '.'.")
    duration: Annotated[TimecodeField, AfterValidator(_positive)]
    prompt: str = Field(min_length=1)
    transition: Transition = "cut"
    keyframes: list[Keyframe] = []
    beats: list[Beat] = []
    params: EndpointParams = EndpointParams()
    style: str | None = Field(None, description="Replaces defaults.style for this scene.")
    seeds: dict[Annotated[int, Field(ge=0)], Annotated[int, Field(ge=0, le=2**32 - 1)]] = Field(
        {}, description="Pinned seeds: segment number within the scene (0, 1, ...) → seed. `composer reroll` writes these."
    )

    @property
    def chain_break(self) -> bool:
        """True when this scene starts a new chain (cut or crossfade)."""
        return self.transition != "continue"

    @property
    def crossfade(self) -> Timecode | None:
        return self.transition.crossfade if isinstance(self.transition, Crossfade) else None


class Storyboard(_Model):
    """A whole storyboard file, validated."""

    version: Literal[1] = 1
    title: str = ""
    output: Output = Output()
    audio: Audio | None = None
    defaults: Defaults = Defaults()
    scenes: list[Scene] = Field(min_length=1)
    # Where the board came from: relative paths resolve against base_dir.
    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)
    _source: str = PrivateAttr(default="<string>")

    @field_validator("audio", mode="before")
    @classmethod
    def _audio_shorthand(cls, v: Any) -> Any:
        return {"file": v} if isinstance(v, str) else v

    def resolve(self, relative: str) -> Path:
        """A path from the storyboard, resolved against the storyboard's directory."""
        p = Path(relative).expanduser()
        return p if p.is_absolute() else (self._base_dir / p)

    @property
    def base_dir(self) -> Path:
        return self._base_dir

    @property
    def source(self) -> str:
        return self._source

    def located(self, source: str, base_dir: Path) -> Storyboard:
        """This board, remembering the file it came from."""
        self._source = source
        self._base_dir = Path(base_dir)
        return self

    def scene(self, scene_id: str) -> Scene:
        for s in self.scenes:
            if s.id == scene_id:
                return s
        raise KeyError(scene_id)

