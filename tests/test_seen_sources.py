"""Seen problems per source: a mixture's problem ids collide across sources ("0".."49" in Qwen2.5-Math, "0".."39" in
SkyThought), so the export records the problems each source's train and validation sides hold, and online replay
of one source skips exactly that source's (every seen id for a source the record does not name).
"""

import json

from test_mixture import make_dm, mixture

from deepprune.online.judges import exported_judge


def test_datamodule_keeps_the_problems_of_each_source_apart():
    dm = make_dm(mixture())
    by_source = dm.problem_ids_by_source
    assert set(by_source) == {"big", "small", "ood"}
    assert by_source["ood"]["train"] == []  # held out: never trained on
    assert len(by_source["ood"]["val"]) == 4 and not set(by_source["ood"]["val"]) & set(by_source["ood"]["test"])
    for split in ("train", "val", "test"):  # the flat lists are the union (what the export always recorded)
        assert set(dm.problem_ids[split]) == {i for ids in by_source.values() for i in ids[split]}
    # the collision the per-source record exists for: an id trained in one source is a test problem of another
    trained_big = set(by_source["big"]["train"])
    assert trained_big & (set(by_source["small"]["test"]) | set(by_source["ood"]["test"]))


def test_online_skips_the_replayed_sources_own_seen_problems(tmp_path):
    record = {
        "kind": "classifier",
        "seen_problems": ["0", "1", "5"],
        "seen_problems_by_source": {"skythought_amc23": ["5"], "qwen25_math": ["0", "1"]},
    }
    (tmp_path / "deepprune_judge.json").write_text(json.dumps(record))
    judge = exported_judge(tmp_path)  # reads the record only: no weights load
    assert judge.seen_problems_in("skythought_amc23") == {"5"}
    assert judge.seen_problems_in("qwen25_math") == {"0", "1"}
    assert judge.seen_problems_in("champ") == {"0", "1", "5"}  # not named: every seen id, never a leak
    assert judge.seen_problems_in(None) == {"0", "1", "5"}
    del record["seen_problems_by_source"]
    (tmp_path / "deepprune_judge.json").write_text(json.dumps(record))
    assert exported_judge(tmp_path).seen_problems_in("skythought_amc23") == {"0", "1", "5"}
