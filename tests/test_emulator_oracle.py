"""Composer's request model and the fal emulator's judge must agree on what fal accepts.

The emulator validates against fal's published JSON schema plus LTX rules written from the
reference; composer uses its pydantic model plus ``ltx_rule_violations``. Each request in the
corpus below must be accepted by both or rejected by both.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

import composer
from composer.request import GenerationRequest, ltx_rule_violations
from composer.testing.fal.validation import validate_input

ROOT = Path(__file__).resolve().parents[1]
BOARDS = sorted((ROOT / "storyboards").glob("*.yaml"))
IMG = "data:image/png;base64,AAAA"
VID = "data:video/mp4;base64,AAAA"


def _planned() -> list[tuple[str, dict[str, Any]]]:
    from composer.planner import with_mode

    out = []
    for path in BOARDS:
        for mode in ("sequential", "bridged"):  # bridges condition at their end; skeletons are long and slow
            tag = "" if mode == "sequential" else "bridged:"
            for i, seg in enumerate(composer.plan(with_mode(composer.load(path), mode)).segments):
                out.append((f"{tag}{path.stem}[{i}]", seg.request))
    return out


PLANNED = _planned()
BASE: dict[str, Any] = {"prompt": "a lighthouse at dusk", "num_frames": 25, "resolution": "480p",
                        "aspect_ratio": "16:9", "frame_rate": 24}


def _with(**change: Any) -> dict[str, Any]:
    body = copy.deepcopy(BASE)
    for key, value in change.items():
        if value is _DROP:
            body.pop(key, None)
        else:
            body[key] = value
    return body


_DROP = object()

# name -> (body, whether fal accepts it per the reference). The expectation is written from the
# schema and conditioning notes, so a side that agrees with the other but not with fal still fails.
CORPUS: dict[str, tuple[Any, bool]] = {
    "minimal": (_with(), True),
    "prompt only": ({"prompt": "x"}, True),
    "not an object": (["prompt"], False),
    "prompt missing": (_with(prompt=_DROP), False),
    "prompt not a string": (_with(prompt=7), False),
    "unknown field": (_with(colour_grade="teal"), False),
    "num_frames 8k+1 max": (_with(num_frames=1441), True),
    "num_frames below min": (_with(num_frames=1), False),
    "num_frames above max": (_with(num_frames=1449), False),
    "num_frames off grid": (_with(num_frames=50), False),
    "num_frames float": (_with(num_frames=25.5), False),
    "num_frames bool": (_with(num_frames=True), False),
    "resolution unknown": (_with(resolution="1080p"), False),
    "aspect_ratio unknown": (_with(aspect_ratio="4:3"), False),
    "aspect_ratio auto": (_with(aspect_ratio="auto"), True),
    "frame_rate 0": (_with(frame_rate=0), False),
    "frame_rate 61": (_with(frame_rate=61), False),
    "frame_rate 60": (_with(frame_rate=60), True),
    "first pass steps 1": (_with(first_pass_num_inference_steps=1), False),
    "first pass steps 13": (_with(first_pass_num_inference_steps=13), False),
    "second pass steps 12": (_with(second_pass_num_inference_steps=12), True),
    "skip steps 0": (_with(second_pass_skip_initial_steps=0), False),
    "skip steps 12": (_with(second_pass_skip_initial_steps=12), False),
    "crf 52": (_with(constant_rate_factor=52), False),
    "crf -1": (_with(constant_rate_factor=-1), False),
    "crf 0": (_with(constant_rate_factor=0), True),
    "adain 0.15": (_with(temporal_adain_factor=0.15), True),
    "adain 0.12": (_with(temporal_adain_factor=0.12), False),
    "adain 1.05": (_with(temporal_adain_factor=1.05), False),
    "tone map 0.35": (_with(tone_map_compression_ratio=0.35), True),
    "tone map -0.05": (_with(tone_map_compression_ratio=-0.05), False),
    "safety checker off": (_with(enable_safety_checker=False), True),
    "detail pass on": (_with(enable_detail_pass=True), True),
    "seed string": (_with(seed="abc"), False),
    "seed int": (_with(seed=42), True),
    "negative prompt list": (_with(negative_prompt=["a"]), False),
    "lora ok": (_with(loras=[{"path": "https://x/lora.safetensors", "scale": 1.5}]), True),
    "lora scale 5": (_with(loras=[{"path": "p", "scale": 5}]), False),
    "lora no path": (_with(loras=[{"scale": 1}]), False),
    "lora extra": (_with(loras=[{"path": "p", "rank": 4}]), False),
    "loras not a list": (_with(loras={"path": "p"}), False),
    "image at 0": (_with(images=[{"image_url": IMG}]), True),
    "image at 16": (_with(images=[{"image_url": IMG, "start_frame_num": 16}]), True),
    "image off grid": (_with(images=[{"image_url": IMG, "start_frame_num": 4}]), False),
    "image negative start": (_with(images=[{"image_url": IMG, "start_frame_num": -8}]), False),
    "image past last frame": (_with(images=[{"image_url": IMG, "start_frame_num": 32}]), False),
    "image on last frame": (_with(images=[{"image_url": IMG, "start_frame_num": 24}]), True),
    "image strength 1.5": (_with(images=[{"image_url": IMG, "strength": 1.5}]), False),
    "image no url": (_with(images=[{"start_frame_num": 0}]), False),
    "image extra": (_with(images=[{"image_url": IMG, "mask": "m"}]), False),
    "images not a list": (_with(images={"image_url": IMG}), False),
    "video at 0": (_with(videos=[{"video_url": VID}]), True),
    "video all fields": (_with(videos=[{"video_url": VID, "start_frame_num": 8, "strength": 0.5,
                                        "reverse_video": True, "limit_num_frames": True, "max_num_frames": 17,
                                        "resample_fps": True, "target_fps": 30, "conditioning_type": "depth",
                                        "preprocess": True}]), True),
    "video off grid": (_with(videos=[{"video_url": VID, "start_frame_num": 12}]), False),
    "video past last frame": (_with(videos=[{"video_url": VID, "start_frame_num": 40}]), False),
    "video type unknown": (_with(videos=[{"video_url": VID, "conditioning_type": "normal"}]), False),
    "video max frames 0": (_with(videos=[{"video_url": VID, "max_num_frames": 0}]), False),
    "video target fps 61": (_with(videos=[{"video_url": VID, "target_fps": 61}]), False),
    "limited video, long max": (_with(videos=[{"video_url": VID, "start_frame_num": 16,
                                               "limit_num_frames": True, "max_num_frames": 1441}]), True),
}

# Composer's model is lax (pydantic coerces "yes" to True, "25" to 25) where fal's schema is
# typed; the body composer sends is its model's dump, so these must come out acceptable.
COERCED: dict[str, dict[str, Any]] = {
    "bool as string": _with(expand_prompt="yes"),
    "int as string": _with(num_frames="25"),
    "float as string": _with(temporal_adain_factor="0.5"),
}


def composer_accepts(body: Any) -> bool:
    try:
        GenerationRequest.model_validate(body)
    except ValidationError:
        return False
    return not ltx_rule_violations(body)


def emulator_accepts(body: Any) -> bool:
    return not validate_input(body)


def test_corpus_covers_the_example_storyboards():
    assert BOARDS and len(PLANNED) >= len(BOARDS)


@pytest.mark.parametrize("name, body", PLANNED, ids=[n for n, _ in PLANNED])
def test_planned_requests_are_accepted_by_both(name, body):
    assert composer_accepts(body), f"composer rejects its own planned request {name}"
    assert emulator_accepts(body), f"emulator rejects planned request {name}: {validate_input(body)}"


@pytest.mark.parametrize("name", list(CORPUS))
def test_composer_and_emulator_agree(name):
    body, fal_accepts = CORPUS[name]
    ours, theirs = composer_accepts(body), emulator_accepts(body)
    assert ours == theirs, (f"{name}: composer {'accepts' if ours else 'rejects'}, emulator "
                            f"{'accepts' if theirs else 'rejects'} ({validate_input(body)})")
    assert ours == fal_accepts, f"{name}: both {'accept' if ours else 'reject'}, the reference says otherwise"


@pytest.mark.parametrize("name", list(COERCED))
def test_coerced_values_are_sent_typed(name):
    body = COERCED[name]
    assert composer_accepts(body) and not emulator_accepts(body), f"{name}: no longer a coercion case"
    sent = GenerationRequest.model_validate(body).to_endpoint_json()
    assert emulator_accepts(sent), f"{name}: emulator rejects what composer sends: {validate_input(sent)}"


def test_rejections_name_the_field():
    """A broken body's 422 detail points at the field that is wrong, FastAPI-style."""
    detail = validate_input(CORPUS["image off grid"][0])
    assert [d["loc"] for d in detail] == [["body", "images", 0, "start_frame_num"]]
    assert detail[0]["type"] == "multiple_of"
    detail = validate_input(CORPUS["unknown field"][0])
    assert detail == [{"loc": ["body", "colour_grade"], "msg": "Extra inputs are not permitted",
                       "type": "extra_forbidden", "input": "teal"}]
