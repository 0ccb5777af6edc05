"""bench.profile_segments' A/B must measure the default evaluation path on both sides (CHUNK_COMMITS, off by default
since session 10's review, is left alone; until session 11 side B switched it on)."""

from __future__ import annotations

from p360.core import api_parsers
from segments import evaluator
from segments.api import views


def test_both_sides_of_the_profile_evaluate_a_claim_in_one_transaction():
    from bench import profile_segments

    saved = (evaluator.CHUNK_COMMITS, views.PAUSE_GC, api_parsers.json_depth)
    try:
        for default in (False, True):  # whatever the default, neither side changes it
            evaluator.CHUNK_COMMITS = default
            for new in (False, True, False):
                profile_segments._variant(new)
                assert evaluator.CHUNK_COMMITS is default
                assert views.PAUSE_GC is new  # what the A/B still switches
    finally:
        evaluator.CHUNK_COMMITS, views.PAUSE_GC, api_parsers.json_depth = saved
