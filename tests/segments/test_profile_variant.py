"""bench.profile_segments' A/B must measure the default evaluation path on both sides (CHUNK_COMMITS, off by default
since session 10's review, is left alone; until session 11 side B switched it on), with the API's current paths on
both (session 12 compares the evaluator's steps: A switches its AB_FLAGS off, B restores them)."""

from __future__ import annotations

from p360.core import api_parsers
from segments import evaluator
from segments.api import views


def test_both_sides_of_the_profile_evaluate_a_claim_in_one_transaction():
    from bench import profile_segments

    saved = (evaluator.CHUNK_COMMITS, views.PAUSE_GC, api_parsers.json_depth)
    flags = {flag: getattr(evaluator, flag) for flag in profile_segments.AB_FLAGS}
    assert flags and all(value is True for value in flags.values())  # B: each step on, as shipped
    try:
        for default in (False, True):  # whatever the default, neither side changes it
            evaluator.CHUNK_COMMITS = default
            for new in (False, True, False):
                profile_segments._variant(new)
                assert evaluator.CHUNK_COMMITS is default
                assert views.PAUSE_GC is True and api_parsers.json_depth is saved[2]
                assert all(getattr(evaluator, flag) is new for flag in flags)
    finally:
        evaluator.CHUNK_COMMITS, views.PAUSE_GC, api_parsers.json_depth = saved
        for flag, value in flags.items():
            setattr(evaluator, flag, value)
