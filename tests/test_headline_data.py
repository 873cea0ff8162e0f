"""The headline task's readers on files the tests write: People's Daily reports under their headlines."""

from __future__ import annotations

from tests.fixtures.headline_corpus import write_msra_reports
from training.data import headline
from training.data.headline import Pair, peoples_daily_training_pairs, read_peoples_daily_leads


def test_reports_with_a_dateline_pair_their_opening_with_the_headline(tmp_path):
    path = tmp_path / "msra.txt"
    write_msra_reports(path)
    assert read_peoples_daily_leads(path) == [
        # the dateline and the photo note go; the texts without a dateline are no reports
        Pair("上海地铁新线今天正式开通运营。市民纷纷前来乘坐。", "上海地铁新线今日开通"),
        Pair("北京市今天召开高考工作会议。会议部署了今年的考务工作。", "北京举行高考工作会议"),
    ]
    assert read_peoples_daily_leads(path, max_chars=20)[0].source == "上海地铁新线今天正式开通运营。"


def test_the_reports_are_a_test_set_beside_the_headline_data(tmp_path):
    write_msra_reports(tmp_path / "ner" / "msra" / "train_pdnorm_minus_pd_devtest.txt")
    (tmp_path / "headline").mkdir()
    assert [p.title for p in headline.test_sets(tmp_path / "headline")["peoples_daily_test"]] == ["上海地铁新线今日开通", "北京举行高考工作会议"]


def test_headed_texts_without_a_dateline_are_training_pairs_if_the_headline_uses_their_words(tmp_path):
    path = tmp_path / "msra.txt"
    write_msra_reports(path)
    pairs = peoples_daily_training_pairs(path)
    assert [p.title for p in pairs][:4] == ["杭州西湖荷花盛开", "成都大熊猫基地迎来双胞胎", "深圳地铁客流创新高", "武汉长江大桥完成维修"]
    assert len(pairs) == 8
    assert pairs[0].source == "杭州西湖的荷花近日盛开，吸引了众多游客。"
    assert not {p.title for p in pairs} & {p.title for p in read_peoples_daily_leads(path)}
