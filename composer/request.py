"""GenerationRequest: the endpoint's input schema, field by field.

This is the one place that knows fal-ai/ltx-video-13b-distilled/multiconditioning's
fields, ranges and defaults (see shared/reference), so a schema change is a
one-file edit. ``to_endpoint_json()`` is exactly the body the endpoint takes.
"""
from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

ENDPOINT_ID = "fal-ai/ltx-video-13b-distilled/multiconditioning"
DEFAULT_NEGATIVE_PROMPT = "worst quality, inconsistent motion, blurry, jittery, distorted"
MAX_FRAMES = 1441
MAX_START_FRAME = 1440

Resolution = Literal["480p", "720p"]
AspectRatio = Literal["9:16", "1:1", "16:9", "auto"]


def _step_005(v: float) -> float:
    if abs(round(v / 0.05) * 0.05 - v) > 1e-9:
        raise ValueError("must be a multiple of 0.05")
    return v


Step005 = Annotated[float, Field(ge=0.0, le=1.0), AfterValidator(_step_005)]
Unit = Annotated[float, Field(ge=0.0, le=1.0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ImageConditioningInput(_Strict):
    image_url: str
    start_frame_num: Annotated[int, Field(ge=0, le=MAX_START_FRAME, multiple_of=8)] = 0
    strength: Unit = 1.0


class VideoConditioningInput(_Strict):
    video_url: str
    start_frame_num: Annotated[int, Field(ge=0, le=MAX_START_FRAME, multiple_of=8)] = 0
    strength: Unit = 1.0
    reverse_video: bool = False
    limit_num_frames: bool = False
    max_num_frames: Annotated[int, Field(ge=1, le=MAX_FRAMES)] = MAX_FRAMES
    resample_fps: bool = False
    target_fps: Annotated[int, Field(ge=1, le=60)] = 24
    conditioning_type: Literal["rgb", "depth", "pose", "canny"] = "rgb"
    preprocess: bool = False


class LoRAWeight(_Strict):
    path: str
    scale: Annotated[float, Field(ge=0.0, le=4.0)] = 1.0
    weight_name: str | None = None


class GenerationRequest(_Strict):
    """One request to the multiconditioning endpoint (every field, with its default)."""

    prompt: Annotated[str, Field(min_length=1)]
    negative_prompt: str = DEFAULT_NEGATIVE_PROMPT
    loras: list[LoRAWeight] = []
    resolution: Resolution = "720p"
    aspect_ratio: AspectRatio = "auto"
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] | None = None
    num_frames: Annotated[int, Field(ge=9, le=MAX_FRAMES)] = 121
    first_pass_num_inference_steps: Annotated[int, Field(ge=2, le=12)] = 8
    second_pass_num_inference_steps: Annotated[int, Field(ge=2, le=12)] = 8
    second_pass_skip_initial_steps: Annotated[int, Field(ge=1, le=11)] = 5
    frame_rate: Annotated[int, Field(ge=1, le=60)] = 24
    expand_prompt: bool = False
    reverse_video: bool = False
    enable_safety_checker: bool = True
    enable_detail_pass: bool = False
    temporal_adain_factor: Step005 = 0.5
    tone_map_compression_ratio: Step005 = 0.0
    constant_rate_factor: Annotated[int, Field(ge=0, le=51)] = 29
    images: list[ImageConditioningInput] = []
    videos: list[VideoConditioningInput] = []

    def to_endpoint_json(self) -> dict[str, Any]:
        """The JSON body for the endpoint (``seed`` left out when unset)."""
        return self.model_dump(mode="json", exclude_none=True)

    def without_urls(self) -> dict[str, Any]:
        """The body with media URLs blanked: what a cache key may depend on."""
        body = self.to_endpoint_json()
        for item in body.get("images", []):
            item["image_url"] = ""
        for item in body.get("videos", []):
            item["video_url"] = ""
        return body


# Fields the planner decides; a storyboard may not set them in `params`.
PLANNER_OWNED = frozenset(
    {"prompt", "num_frames", "frame_rate", "resolution", "aspect_ratio", "images", "videos", "reverse_video"}
)
USER_PARAM_FIELDS = tuple(f for f in GenerationRequest.model_fields if f not in PLANNER_OWNED)


def ltx_rule_violations(body: dict[str, Any]) -> list[str]:
    """LTX's own rules beyond the schema's ranges (8k+1 lengths, start + length fit)."""
    problems = []
    n = body.get("num_frames", 121)
    if isinstance(n, int) and (n - 1) % 8:
        problems.append(f"num_frames={n} is not 8k+1")
    # A conditioning video has to end inside the output, so it cannot start past it either.
    for group in ("images", "videos"):
        for i, item in enumerate(body.get(group) or []):
            start = item.get("start_frame_num", 0)
            if isinstance(start, int) and isinstance(n, int) and start >= n:
                problems.append(f"{group}[{i}].start_frame_num={start} is past the last frame ({n - 1})")
    return problems


def canonical_json(data: Any) -> str:
    """Stable JSON text (sorted keys, no spaces): what hashes and plans are made of."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

