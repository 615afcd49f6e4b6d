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
