"""The headline task's readers on files the tests write: People's Daily reports under their headlines."""

from __future__ import annotations

from tests.fixtures.headline_corpus import write_msra_reports
from training.data import headline
from training.data.headline import Pair, read_peoples_daily_leads


def test_reports_with_a_dateline_pair_their_opening_with_the_headline(tmp_path):
    path = tmp_path / "msra.txt"
    write_msra_reports(path)
    assert read_peoples_daily_leads(path) == [
        # the dateline and the photo note go; the essay without a dateline is no report
        Pair("上海地铁新线今天正式开通运营。市民纷纷前来乘坐。", "上海地铁新线今日开通"),
        Pair("北京市今天召开高考工作会议。会议部署了今年的考务工作。", "北京举行高考工作会议"),
    ]
    assert read_peoples_daily_leads(path, max_chars=20)[0].source == "上海地铁新线今天正式开通运营。"


def test_the_reports_are_a_test_set_beside_the_headline_data(tmp_path):
    write_msra_reports(tmp_path / "ner" / "msra" / "train_pdnorm_minus_pd_devtest.txt")
    (tmp_path / "headline").mkdir()
    assert [p.title for p in headline.test_sets(tmp_path / "headline")["peoples_daily_test"]] == ["上海地铁新线今日开通", "北京举行高考工作会议"]
