from fractions import Fraction

import pytest

from composer.errors import TimecodeError
from composer.timecode import Timecode, format_frames


@pytest.mark.parametrize(
    "text, fps, frames",
    [
        ("10s", 24, 240),
        ("1.5s", 24, 36),
        ("250ms", 24, 6),
        ("00:01:02.500", 24, 1500),
        ("01:02", 30, 1860),
        ("1:00:00", 1, 3600),
        ("240f", 24, 240),
        ("240f", 60, 240),  # frames stay frames whatever the fps
        ("2m", 24, 2880),
        (10, 24, 240),
        (0.5, 30, 15),
        ("  3s ", 24, 72),
        ("0.02s", 24, 0),  # 0.48 frame rounds to 0
        ("0.0625s", 24, 2),  # exactly 1.5 frames rounds half up
    ],
)
def test_parse_to_frames(text, fps, frames):
    assert Timecode.parse(text).to_frames(fps) == frames


def test_parse_is_exact():
    assert Timecode.parse("1.1s").seconds == Fraction(11, 10)
    assert Timecode.parse("00:00:00.001").seconds == Fraction(1, 1000)


@pytest.mark.parametrize("bad", ["", "ten", "10x", "1:2:3:4", "00:61", "1.5f", "s", True, None, [1], "00:60:00"])
def test_bad_timecodes_raise(bad):
    with pytest.raises(TimecodeError):
        Timecode.parse(bad)


def test_bad_timecode_message_says_what_is_accepted():
    with pytest.raises(TimecodeError, match=r"'10x'.*e\.g\. '10s'"):
        Timecode.parse("10x")


@pytest.mark.parametrize(
    "frames, fps, text",
    [(0, 24, "00:00:00.000"), (1500, 24, "00:01:02.500"), (1, 3, "00:00:00.333"), (2, 3, "00:00:00.667"),
     (90000, 25, "01:00:00.000"), (-12, 24, "-00:00:00.500")],
)
def test_format_frames(frames, fps, text):
    assert format_frames(frames, fps) == text


def test_format_and_parse_round_trip():
    for fps in (1, 12, 24, 25, 30, 60):
        for frames in (0, 1, 7, 59, 61, 1441, 7200):
            assert Timecode.parse(format_frames(frames, fps)).to_frames(fps) == frames


def test_str_round_trip():
    for text in ("10s", "1.5s", "240f", "0.25s"):
        assert str(Timecode.parse(str(Timecode.parse(text)))) == str(Timecode.parse(text))
    assert str(Timecode.parse("250ms")) == "0.25s"


def test_sign_queries():
    assert Timecode.parse("-1s").is_negative()
    assert Timecode.parse("0f").is_zero()
    assert not Timecode.parse("1f").is_zero()


@pytest.mark.parametrize(
    "text, suggestion",
    [
        ("1:5", "did you mean '1:05' or '1.5s'?"),
        ("12:7", "did you mean '12:07' or '12.7s'?"),
        ("0:5.5", "did you mean '0:05.5'?"),
        ("1:2:03", "did you mean '1:02:03'?"),
        ("1:02:3", "did you mean '1:02:03'?"),
    ],
)
def test_clock_times_take_two_digit_fields(text, suggestion):
    # "1:5" used to mean 65 s silently
    with pytest.raises(TimecodeError) as info:
        Timecode.parse(text)
    assert suggestion in str(info.value)
    assert str(info.value).startswith(f"bad timecode {text!r}")


@pytest.mark.parametrize("text, seconds", [("1:05", 65), ("0:05.5", 5.5), ("1:02:03", 3723), ("10:00", 600)])
def test_two_digit_clock_times_still_parse(text, seconds):
    assert Timecode.parse(text).to_seconds() == seconds
