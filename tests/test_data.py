import hashlib

import pytest

from harness.data import DataFile, DataResolver, read_csv, read_jsonl
from harness.errors import HarnessError


def _file(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_missing_file_names_dataset_file_and_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    resolver = DataResolver(tmp_path, allow_download=False)
    with pytest.raises(HarnessError) as err:
        resolver.path(DataFile("xstest", "xstest/xstest_prompts.csv", "0" * 64))
    msg = str(err.value)
    assert "'xstest'" in msg and "xstest/xstest_prompts.csv" in msg and "--data-dir" in msg


def test_wrong_checksum_is_an_error(tmp_path):
    _file(tmp_path, "a.csv", "x\n1\n")
    resolver = DataResolver(tmp_path)
    with pytest.raises(HarnessError, match="corrupt or a different version; replace it with the published file"):
        resolver.path(DataFile("demo", "a.csv", "f" * 64))
    good = hashlib.sha256(b"x\n1\n").hexdigest()
    assert resolver.path(DataFile("demo", "a.csv", good)).name == "a.csv"
    assert resolver.used == {"a.csv": good}


def test_missing_data_dir_is_an_error(tmp_path):
    with pytest.raises(HarnessError, match="does not exist"):
        DataResolver(tmp_path / "nope")


def test_malformed_csv_names_the_line(tmp_path):
    path = _file(tmp_path, "b.csv", "a,b\n1,2\n3,4,5\n")
    with pytest.raises(HarnessError, match=r"b.csv:3: expected 2 fields .*Fix or re-download the file"):
        read_csv(path)


def test_malformed_jsonl_names_the_line(tmp_path):
    path = _file(tmp_path, "c.jsonl", '{"a": 1}\n\n{"a": \n')
    with pytest.raises(HarnessError, match=r"c.jsonl:3: malformed JSON line .*Fix or re-download the file"):
        read_jsonl(path)


def test_a_torn_tail_is_cut_before_the_next_append(tmp_path):
    """A file the harness appends to (records, trials) after a kill mid-write: the fragment is cut off, so the
    next line starts clean and the whole file reads back strictly."""
    from harness.data import read_jsonl
    from harness.runstore import append_jsonl, read_and_trim

    path = tmp_path / "trials.jsonl"
    append_jsonl(path, [{"trial": 0}])
    with open(path, "a") as fh:
        fh.write('{"trial": 1, "sco')
    assert read_and_trim(path, "fix it") == [{"trial": 0}]
    append_jsonl(path, [{"trial": 1}])
    assert read_jsonl(path) == [{"trial": 0}, {"trial": 1}]
    with open(path, "a") as fh:
        fh.write('not json\n{"trial": 2}\n')
    with pytest.raises(HarnessError, match=r"trials.jsonl:3: malformed JSON .*fix it"):
        read_and_trim(path, "fix it")
